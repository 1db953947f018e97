"""Real training on the `tiny` base: SFT learns a structured output, DPO widens the reward margin, DP-SGD
reports its epsilon, cancel and lease loss stop a run, a killed run resumes, and reruns are bit-identical."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from services.trainer.domain.progress import TrainingCancelledError
from services.trainer.engine.loop import run_training
from services.trainer.engine.models import load_model, load_tokenizer
from services.trainer.engine.packaging import deterministic_tar
from services.trainer.engine.run import TrainingJob, TrainingOutcome, last_complete_checkpoint
from shared.datasets.loaded import load_dataset
from shared.events.payloads import MethodSpec, TrainingProgress
from shared.models.bases import BaseModelInfo
from shared.stack.lease import LeaseLost
from shared.training.hyperparameters import validate_hyperparameters
from tests.trainer.trainer_data import (
    chat_records,
    extraction_example,
    preference_records,
    text_records,
    write_jsonl,
)

pytestmark = pytest.mark.slow
SCHEMA = {"name", "city", "item", "quantity"}


class NullHooks:
    """Hooks that report nothing."""

    def started(self, resumed_from_step: int, total_steps: int) -> None:
        return None

    def progress(self, progress: TrainingProgress) -> None:
        return None

    def before_checkpoint(self, step: int) -> None:
        return None

    def checkpointed(self, step: int, directory: Path) -> None:
        return None

    def cancel_requested(self) -> bool:
        return False


def directory_digest(directory: Path) -> str:
    """The digest the artefact store would give the final model's deterministic tar."""
    return hashlib.sha256(deterministic_tar(directory)).hexdigest()


class Recorder(NullHooks):
    def __init__(self) -> None:
        self.progress_events: list[TrainingProgress] = []
        self.checkpoints: list[int] = []
        self.started_at: list[int] = []

    def started(self, resumed_from_step: int, total_steps: int) -> None:
        self.started_at.append(resumed_from_step)

    def progress(self, progress: TrainingProgress) -> None:
        self.progress_events.append(progress)

    def checkpointed(self, step: int, directory: Path) -> None:
        self.checkpoints.append(step)


def make_job(tmp_path: Path, base: BaseModelInfo, records: list[dict[str, Any]], method: MethodSpec,
             hyper: dict[str, Any], name: str = "job", seed: int = 7) -> TrainingJob:
    data = load_dataset(write_jsonl(tmp_path / f"{name}.jsonl", records))
    params = validate_hyperparameters({"max_seq_length": 80, **hyper}, method)
    return TrainingJob(job_id=name, base=base, method=method, params=params, seed=seed, dataset=data,
                       workdir=tmp_path / name)


def schema_compliance(model: Any, tokenizer: Any, n: int = 8) -> float:
    """Share of held-out prompts answered with a JSON object of exactly the task's keys, then EOS."""
    rng = random.Random(4242)
    good = 0
    for _ in range(n):
        prompt, _answer = extraction_example(rng)
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
        inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt")
        output = model.generate(**inputs, max_new_tokens=40, do_sample=False,
                                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        new = output[0, inputs["input_ids"].shape[1]:].tolist()
        if tokenizer.eos_token_id not in new:
            continue
        reply = tokenizer.decode(new[: new.index(tokenizer.eos_token_id)])
        try:
            parsed = json.loads(reply)
        except ValueError:
            continue
        good += isinstance(parsed, dict) and set(parsed) == SCHEMA and isinstance(parsed["quantity"], int)
    return good / n


def test_sft_lora_learns_the_output_schema(tmp_path: Path, tiny_base: BaseModelInfo) -> None:
    from peft import PeftModel

    job = make_job(tmp_path, tiny_base, chat_records(48, seed=1), MethodSpec(kind="sft"),
                   {"max_steps": 50, "learning_rate": 5e-3, "save_steps": 1000, "logging_steps": 10})
    hooks = Recorder()
    outcome = run_training(job, hooks)
    tokenizer = load_tokenizer(tiny_base)
    before = schema_compliance(load_model(tiny_base, 0).eval(), tokenizer)
    tuned = PeftModel.from_pretrained(load_model(tiny_base, 0), str(outcome.model_dir)).eval()
    after = schema_compliance(tuned, tokenizer)
    assert before <= 0.25 and after >= 0.75, (before, after)
    assert outcome.metrics["final_loss"] < outcome.metrics["first_loss"]
    assert [p.step for p in hooks.progress_events] == [10, 20, 30, 40, 50]
    assert hooks.progress_events[-1].eta_s == 0 and hooks.progress_events[-1].tokens_per_s
    assert (outcome.model_dir / "adapter_model.safetensors").exists()
    adapter_config = json.loads((outcome.model_dir / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "tiny"


def test_same_seed_data_base_and_config_give_a_bit_identical_adapter(tmp_path: Path,
                                                                       tiny_base: BaseModelInfo) -> None:
    records = chat_records(16, seed=3)
    hyper = {"max_steps": 6, "save_steps": 1000, "lora_dropout": 0.1}
    digests = []
    for name in ("first", "second"):
        outcome = run_training(make_job(tmp_path, tiny_base, records, MethodSpec(kind="sft"), hyper, name),
                               NullHooks())
        digests.append(directory_digest(outcome.model_dir))
    other_seed = run_training(make_job(tmp_path, tiny_base, records, MethodSpec(kind="sft"), hyper, "third",
                                       seed=8), NullHooks())
    assert digests[0] == digests[1]
    assert directory_digest(other_seed.model_dir) != digests[0]


class CrashAfterCheckpoint(Recorder):
    """Simulates SIGKILL right after the first checkpoint is recorded."""

    def checkpointed(self, step: int, directory: Path) -> None:
        super().checkpointed(step, directory)
        raise KeyboardInterrupt("simulated kill")


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path, tiny_base: BaseModelInfo) -> None:
    job = make_job(tmp_path, tiny_base, chat_records(16, seed=5), MethodSpec(kind="sft"),
                   {"max_steps": 8, "save_steps": 4, "logging_steps": 2})
    with pytest.raises(KeyboardInterrupt):
        run_training(job, CrashAfterCheckpoint())
    assert last_complete_checkpoint(job.workdir / "run") == job.workdir / "run" / "checkpoint-4"
    # A checkpoint directory without our completion marker is a save cut short: never resumed from.
    (job.workdir / "run" / "checkpoint-6").mkdir()
    hooks = Recorder()
    outcome: TrainingOutcome = run_training(job, hooks)
    assert outcome.resumed_from_step == 4 and hooks.started_at == [4]
    assert [p.step for p in hooks.progress_events] == [6, 8]
    assert outcome.metrics["steps"] == 8
    assert not (job.workdir / "run" / "checkpoint-6").exists() and hooks.checkpoints == [8]


class CancelAt(Recorder):
    def __init__(self, step: int) -> None:
        super().__init__()
        self.step, self.seen = step, 0

    def cancel_requested(self) -> bool:
        self.seen += 1
        return self.seen >= self.step


def test_cancel_stops_at_the_next_step_without_a_final_model(tmp_path: Path, tiny_base: BaseModelInfo) -> None:
    job = make_job(tmp_path, tiny_base, chat_records(16, seed=6), MethodSpec(kind="sft"), {"max_steps": 50})
    with pytest.raises(TrainingCancelledError) as caught:
        run_training(job, CancelAt(3))
    assert caught.value.at_step == 3
    assert not (job.workdir / "final").exists()


class LoseLease(Recorder):
    def before_checkpoint(self, step: int) -> None:
        raise LeaseLost("another worker took over")


def test_lost_lease_aborts_before_writing_a_checkpoint(tmp_path: Path, tiny_base: BaseModelInfo) -> None:
    job = make_job(tmp_path, tiny_base, chat_records(16, seed=6), MethodSpec(kind="sft"),
                   {"max_steps": 6, "save_steps": 3})
    with pytest.raises(LeaseLost):
        run_training(job, LoseLease())
    assert last_complete_checkpoint(job.workdir / "run") is None
    assert not (job.workdir / "final").exists()


def test_dpo_raises_the_reward_margin(tmp_path: Path, tiny_base: BaseModelInfo) -> None:
    job = make_job(tmp_path, tiny_base, preference_records(24, seed=2), MethodSpec(kind="dpo"),
                   {"max_steps": 16, "learning_rate": 5e-3, "logging_steps": 1, "batch_size": 4, "beta": 0.1,
                    "save_steps": 1000})
    outcome = run_training(job, NullHooks())
    margins = outcome.metrics
    assert margins["rewards_margins"] > 0.5, margins
    assert outcome.metrics["rewards_accuracies"] >= 0.75
    assert outcome.metrics["final_loss"] < outcome.metrics["first_loss"]


def test_dp_sgd_run_reports_the_accountants_epsilon(tmp_path: Path, tiny_base: BaseModelInfo) -> None:
    method = MethodSpec(kind="sft", adapter="lora", differential_privacy=True)
    job = make_job(tmp_path, tiny_base, chat_records(64, seed=9), method,
                   {"max_steps": 12, "batch_size": 8, "dp_target_epsilon": 4.0, "dp_delta": 1e-3,
                    "save_steps": 6, "logging_steps": 4})
    hooks = Recorder()
    outcome = run_training(job, hooks)
    assert outcome.epsilon is not None and 3.0 < outcome.epsilon <= 4.05
    assert outcome.delta == 1e-3
    assert hooks.checkpoints == [6] and [p.step for p in hooks.progress_events] == [4, 8, 12]
    report = json.loads((outcome.model_dir / "dp_report.json").read_text())
    assert report["epsilon"] == outcome.epsilon and report["noise_multiplier"] > 0


def test_continued_pretraining_with_full_fine_tuning(tmp_path: Path, tiny_base: BaseModelInfo) -> None:
    job = make_job(tmp_path, tiny_base, text_records(32, seed=4), MethodSpec(kind="cpt", adapter="full"),
                   {"max_steps": 12, "learning_rate": 1e-3, "logging_steps": 4, "save_steps": 1000})
    outcome = run_training(job, NullHooks())
    assert (outcome.model_dir / "model.safetensors").exists()
    assert not (outcome.model_dir / "adapter_config.json").exists()
    assert outcome.metrics["final_loss"] < outcome.metrics["first_loss"]
