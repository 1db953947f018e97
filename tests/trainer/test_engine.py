"""The engine's shared run bookkeeping and strategy choice, without loading a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.trainer.engine.dp_sgd import DifferentiallyPrivateTraining
from services.trainer.engine.loop import strategy_for
from services.trainer.engine.plain import PlainTraining
from services.trainer.engine.run import TrainingJob, TrainingRun, last_complete_checkpoint
from shared.datasets.loaded import LoadedDataset
from shared.events.payloads import MethodSpec, TrainingProgress
from shared.models.bases import BaseModelInfo
from shared.training.hyperparameters import validate_hyperparameters


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def started(self, resumed_from_step: int, total_steps: int) -> None:
        self.calls.append(("started", (resumed_from_step, total_steps)))

    def progress(self, progress: TrainingProgress) -> None:
        self.calls.append(("progress", progress))

    def before_checkpoint(self, step: int) -> None:
        self.calls.append(("before_checkpoint", step))

    def checkpointed(self, step: int, directory: Path) -> None:
        self.calls.append(("checkpointed", step))

    def cancel_requested(self) -> bool:
        return False


def a_run(tmp_path: Path, hooks: Recorder) -> TrainingRun:
    method = MethodSpec(kind="sft", adapter="lora")
    job = TrainingJob(
        job_id="job_1", base=BaseModelInfo(name="tiny", path=tmp_path / "base", licence="MIT", sha256="0" * 64),
        method=method, params=validate_hyperparameters({"max_steps": 10}, method), seed=0,
        dataset=LoadedDataset(kind="chat", records=[], fingerprint="0" * 64), workdir=tmp_path / "job_1",
    )
    return TrainingRun(job, hooks)


def test_the_method_picks_the_strategy() -> None:
    assert isinstance(strategy_for(MethodSpec(kind="sft")), PlainTraining)
    assert isinstance(strategy_for(MethodSpec(kind="dpo", adapter="full")), PlainTraining)
    assert isinstance(strategy_for(MethodSpec(kind="cpt", differential_privacy=True)), DifferentiallyPrivateTraining)


def test_a_run_reports_progress_from_where_it_began_and_keeps_the_loss_history(tmp_path: Path) -> None:
    hooks = Recorder()
    run = a_run(tmp_path, hooks)
    with pytest.raises(RuntimeError, match="before the run began"):
        run.logged(2, 1.0, 100, learning_rate=None)
    run.begin(4, tokens=400)
    run.logged(6, 0.5, 600, learning_rate=1e-3)
    assert hooks.calls[0] == ("started", (4, 10))
    kind, progress = hooks.calls[1]
    assert kind == "progress" and isinstance(progress, TrainingProgress)
    assert (progress.job_id, progress.step, progress.total_steps, progress.loss) == ("job_1", 6, 10, 0.5)
    assert progress.learning_rate == 1e-3 and progress.eta_s is not None
    assert run.history == [(6, 0.5)]


def test_a_checkpoint_counts_only_once_the_strategy_says_it_is_saved(tmp_path: Path) -> None:
    hooks = Recorder()
    run = a_run(tmp_path, hooks)
    saved = run.run_dir / "checkpoint-5"
    saved.mkdir(parents=True)
    (saved / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "base")}))
    (saved / "README.md").write_text("generated card")
    half_written = run.run_dir / "checkpoint-8"
    half_written.mkdir()
    run.before_checkpoint(5)
    run.checkpoint_saved(saved, 5)
    assert hooks.calls == [("before_checkpoint", 5), ("checkpointed", 5)]
    assert last_complete_checkpoint(run.run_dir) == saved
    assert not half_written.exists(), "a save cut short is removed, never resumed from"
    assert json.loads((saved / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny"
    assert not (saved / "README.md").exists()
