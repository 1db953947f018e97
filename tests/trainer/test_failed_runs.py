"""What a failed run leaves behind and who may say it failed: training.failed is published only by the worker
that still holds the job's lease (a worker whose lease moved stays silent and leaves the directory to the new
holder), and a failed run's weights (checkpoints, a diverged final model) are removed from its own directory
only, without following a symlink out of it, while its logs stay for diagnosis."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from services.trainer.domain.progress import TrainingCancelledError, TrainingDiverged
from services.trainer.engine.distributed import RANKS_DIR, STAGED_FINAL
from services.trainer.engine.run import COMPLETE_MARKER, TrainedModel, TrainingRun
from shared.events.envelope import Envelope
from shared.ids import new_job_id
from shared.models.bases import BaseModelError, BaseModelInfo
from shared.stack.lease import fence_key, lease_key
from tests.trainer.test_handlers import Harness, build_harness, stored_dataset
from tests.trainer.test_training_failures import FakeStrategy, outcome_rows, save_adapter, use_strategy

LOGGER = "tunegate.trainer"


@pytest.fixture
def harness(tmp_path: Path, redis_url: str, tiny_base: BaseModelInfo) -> Harness:
    return build_harness(tmp_path, redis_url, tiny_base)


def take_over(harness: Harness, job_id: str) -> None:
    """Another worker re-leases the job, as after this worker's lease expired: a new holder, a newer token."""
    harness.client.set(lease_key(job_id), "worker-b", px=60_000)
    harness.client.incr(fence_key(job_id))


class CheckpointingStrategy(FakeStrategy):
    """FakeStrategy that first saves a complete checkpoint (and a rank log) as a real run would, then runs
    `meanwhile` (e.g. another worker takes the job over) before failing or returning."""

    def __init__(self, *, meanwhile: Callable[[TrainingRun], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.meanwhile = meanwhile

    def train(self, run: TrainingRun) -> TrainedModel:
        run.begin(0)
        run.logged(1, 2.0, 10, learning_rate=1e-3)
        run.before_checkpoint(1)
        checkpoint = run.run_dir / "checkpoint-1"
        save_adapter({"lora_A": torch.ones(2, 2)})(checkpoint)
        run.checkpoint_saved(checkpoint, 1)
        ranks = run.job.workdir / RANKS_DIR
        ranks.mkdir(parents=True, exist_ok=True)
        (ranks / "rank-0.log").write_text("rank 0: step 1 loss 2.0\n")
        save_adapter({"lora_A": torch.ones(2, 2)})(ranks / STAGED_FINAL)
        if self.meanwhile is not None:
            self.meanwhile(run)
        if self.error is not None:
            raise self.error
        return TrainedModel(save=self.save, metrics=dict(self.metrics), resumed_from_step=0)


def weight_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt"))


# ------------------------------------------------------------------------------------- lease lost before failing


def test_a_worker_whose_lease_moved_does_not_publish_training_failed(harness: Harness, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    job_id = new_job_id()
    use_strategy(monkeypatch, CheckpointingStrategy(meanwhile=lambda run: take_over(harness, job_id),
                                                    error=ZeroDivisionError("float division by zero")))
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert harness.deliver(harness.request(job_id, dataset, fingerprint)) == []
    assert "training.failed" not in [e.type for e in harness.published]
    assert outcome_rows(harness) == []
    # The new holder resumes from this checkpoint: it is not this worker's to delete.
    workdir = harness.handlers.deps.workdir(job_id)
    assert (workdir / "run" / "checkpoint-1" / COMPLETE_MARKER).exists()
    assert (workdir / RANKS_DIR / STAGED_FINAL).exists()
    assert harness.client.get(lease_key(job_id)) == b"worker-b"
    [record] = [r for r in caplog.records if "training.failed" in r.getMessage()]
    message = record.getMessage()
    assert record.levelno == logging.WARNING and job_id in message and "ZeroDivisionError" in message
    assert "no longer holds its lease" in message and "held by 'worker-b'" in message


def test_a_run_that_finishes_after_the_lease_moved_is_not_recorded(harness: Harness, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The success path goes through the same lease check as the failure path."""
    job_id = new_job_id()
    use_strategy(monkeypatch, CheckpointingStrategy(meanwhile=lambda run: take_over(harness, job_id)))
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    assert harness.deliver(harness.request(job_id, dataset, fingerprint)) == []
    assert outcome_rows(harness) == []
    assert (harness.handlers.deps.workdir(job_id) / "run" / "checkpoint-1" / COMPLETE_MARKER).exists()


def test_a_completed_run_removes_its_checkpoints_and_records_its_result(harness: Harness, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the result is packaged and recorded, the checkpoints go (the same removal as a failed run's)."""
    job_id = new_job_id()
    use_strategy(monkeypatch, CheckpointingStrategy())
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    [completed] = harness.deliver(harness.request(job_id, dataset, fingerprint))
    assert completed.type == "training.completed"
    assert not (harness.handlers.deps.workdir(job_id) / "run").exists()


def test_a_refusal_after_the_lease_moved_is_not_published(harness: Harness, tmp_path: Path) -> None:
    job_id = new_job_id()

    def base_lost_while_the_job_moved(name: str) -> BaseModelInfo:
        take_over(harness, job_id)
        raise BaseModelError(f"unknown base model {name!r}")

    harness.handlers.deps.resolve_base = base_lost_while_the_job_moved
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    assert harness.deliver(harness.request(job_id, dataset, fingerprint)) == []
    assert outcome_rows(harness) == []


def test_a_cancellation_after_the_lease_moved_is_not_published(harness: Harness, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancelled run is an outcome like any other: only the lease's current holder may publish it."""
    job_id = new_job_id()

    def moved_then_cancelled(run: TrainingRun) -> None:
        take_over(harness, job_id)
        raise TrainingCancelledError(1)

    use_strategy(monkeypatch, CheckpointingStrategy(meanwhile=moved_then_cancelled))
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    assert harness.deliver(harness.request(job_id, dataset, fingerprint)) == []
    assert "training.cancelled" not in [e.type for e in harness.published]
    assert outcome_rows(harness) == []


# ------------------------------------------------------------------------------------ a failed run's weights


@pytest.mark.parametrize("strategy_kwargs, reason", [
    ({"error": ZeroDivisionError("float division by zero")},
     "training error: ZeroDivisionError: float division by zero"),
    # Weights that diverged are saved to final/ before the check refuses them: they go too.
    ({"save": save_adapter({"lora_A": torch.tensor([float("nan")])})},
     "training diverged: 1 of 1 adapter tensors are NaN/inf"),
])
def test_a_failed_run_removes_its_weights_and_keeps_its_logs(harness: Harness, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             strategy_kwargs: dict[str, Any], reason: str) -> None:
    job_id = new_job_id()
    outside = tmp_path / "elsewhere"
    save_adapter({"keep": torch.ones(1)})(outside)

    def link_out(run: TrainingRun) -> None:
        # A symlink inside the run directory must be removed as a link, never followed.
        (run.run_dir / "checkpoint-1" / "linked").symlink_to(outside, target_is_directory=True)

    use_strategy(monkeypatch, CheckpointingStrategy(meanwhile=link_out, **strategy_kwargs))
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    [failed] = harness.deliver(harness.request(job_id, dataset, fingerprint))
    assert failed.type == "training.failed" and failed.data.reason == reason
    workdir = harness.handlers.deps.workdir(job_id)
    assert not (workdir / "run").exists() and not (workdir / "final").exists()
    assert weight_files(workdir) == []
    assert (workdir / RANKS_DIR / "rank-0.log").read_text() == "rank 0: step 1 loss 2.0\n"
    assert (outside / "adapter_model.safetensors").exists() and (outside / "adapter_config.json").exists()
    [row] = outcome_rows(harness)
    assert (row.job_id, row.outcome) == (job_id, "failed")


def test_a_refused_job_removes_checkpoints_left_by_an_earlier_attempt(harness: Harness, tmp_path: Path) -> None:
    """A crashed attempt left a checkpoint; the redelivery is refused (the base is gone): the job is over and
    nothing will resume from it."""
    job_id = new_job_id()
    checkpoint = harness.handlers.deps.workdir(job_id) / "run" / "checkpoint-5"
    save_adapter({"lora_A": torch.ones(2, 2)})(checkpoint)

    def gone(name: str) -> BaseModelInfo:
        raise BaseModelError(f"unknown base model {name!r}")

    harness.handlers.deps.resolve_base = gone
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    [failed] = harness.deliver(harness.request(job_id, dataset, fingerprint))
    assert failed.type == "training.failed"
    assert not checkpoint.parent.exists()


def test_a_symlinked_run_directory_is_not_followed(harness: Harness, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    job_id = new_job_id()
    outside = tmp_path / "elsewhere"
    save_adapter({"keep": torch.ones(1)})(outside / "checkpoint-1")
    workdir = harness.handlers.deps.workdir(job_id)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "run").symlink_to(outside, target_is_directory=True)
    use_strategy(monkeypatch, FakeStrategy(error=ZeroDivisionError("float division by zero")))
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        [failed] = harness.deliver(harness.request(job_id, dataset, fingerprint))
    assert failed.type == "training.failed"
    assert (outside / "checkpoint-1" / "adapter_model.safetensors").exists()
    assert (workdir / "run").is_symlink()
    assert any("symlink" in r.getMessage() and job_id in r.getMessage() for r in caplog.records)


def test_a_symlinked_job_directory_is_left_alone(harness: Harness, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    job_id = new_job_id()
    outside = tmp_path / "elsewhere"
    save_adapter({"keep": torch.ones(1)})(outside / "run" / "checkpoint-1")
    workdir = harness.handlers.deps.workdir(job_id)
    workdir.rmdir()  # deps.workdir created it; put a link in its place
    workdir.symlink_to(outside, target_is_directory=True)
    use_strategy(monkeypatch, FakeStrategy(error=ZeroDivisionError("float division by zero")))
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        [failed] = harness.deliver(harness.request(job_id, dataset, fingerprint))
    assert failed.type == "training.failed"
    assert (outside / "run" / "checkpoint-1" / "adapter_model.safetensors").exists()
    assert any("symlink" in r.getMessage() and job_id in r.getMessage() for r in caplog.records)


def test_a_cleanup_that_fails_is_logged_and_the_job_still_fails(harness: Harness, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    job_id = new_job_id()
    use_strategy(monkeypatch, CheckpointingStrategy(error=ZeroDivisionError("float division by zero")))
    real_rmtree = shutil.rmtree

    def refuse(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path).name == "run":
            raise PermissionError(13, "Permission denied", str(path))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", refuse)
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        [failed] = harness.deliver(harness.request(job_id, dataset, fingerprint))
    assert failed.type == "training.failed"
    assert failed.data.reason == "training error: ZeroDivisionError: float division by zero"
    [row] = outcome_rows(harness)
    assert row.outcome == "failed"
    assert any("Permission denied" in r.getMessage() and job_id in r.getMessage() for r in caplog.records)
    # What could be removed was: one refused folder does not keep the others' weights on disk.
    assert not (harness.handlers.deps.workdir(job_id) / RANKS_DIR / STAGED_FINAL).exists()


@pytest.mark.slow
def test_a_real_run_that_fails_after_checkpointing_leaves_no_checkpoint(harness: Harness, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The `tiny` base trains to its first checkpoint (step 2), then diverges at step 4."""
    logged = TrainingRun.logged

    def diverge_at_4(run: TrainingRun, step: int, loss: float, tokens: int, **extras: Any) -> None:
        if step >= 4:
            raise TrainingDiverged(f"training diverged: loss became NaN at step {step}")
        logged(run, step, loss, tokens, **extras)

    monkeypatch.setattr(TrainingRun, "logged", diverge_at_4)
    job_id = new_job_id()
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    [failed] = harness.deliver(harness.request(job_id, dataset, fingerprint, hyperparameters={
        "max_steps": 6, "save_steps": 2, "logging_steps": 2, "max_seq_length": 80}))
    assert failed.type == "training.failed" and failed.data.reason.endswith("at step 4")
    assert [e.type for e in harness.published].count("training.checkpointed") == 1
    workdir = harness.handlers.deps.workdir(job_id)
    assert not (workdir / "run").exists()
    assert weight_files(workdir) == []


def test_nothing_is_removed_for_a_job_that_publishes_nothing(harness: Harness, tmp_path: Path) -> None:
    """Left to another live worker: its directory is untouched."""
    harness.handlers.deps.lease_wait_s = 0.5  # the other worker's lease is live: no need to wait a TTL out
    job_id = new_job_id()
    checkpoint = harness.handlers.deps.workdir(job_id) / "run" / "checkpoint-5"
    save_adapter({"lora_A": torch.ones(2, 2)})(checkpoint)
    harness.client.set(lease_key(job_id), "worker-b", px=60_000)
    harness.client.set(fence_key(job_id), 4)
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    published: list[Envelope] = harness.deliver(harness.request(job_id, dataset, fingerprint))
    assert published == [] and (checkpoint / "adapter_model.safetensors").exists()
