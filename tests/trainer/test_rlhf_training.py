"""RLHF on the `tiny` base, with numbers: a reward model well above chance on held-out pairs, then a GRPO
policy against it (and a rule) whose mean reward on held-out prompts rises with KL within its bound; the
policy run is first cancelled after its first checkpoint (no final model) and then resumed from that
checkpoint, the path a restarted worker takes. One reward model and one policy run serve every test (module
fixtures): the budget is seconds, not minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.evaluator.domain.reward_metrics import expected_calibration_error, pairwise_accuracy
from services.trainer.domain.progress import TrainingCancelledError
from services.trainer.engine.loop import run_training
from services.trainer.engine.models import load_model, load_tokenizer
from services.trainer.engine.reinforcement import JobReward, load_reward_model, reward_model_scores
from services.trainer.engine.run import TrainingJob, TrainingOutcome, last_complete_checkpoint
from shared.events.payloads import MethodSpec
from shared.models.bases import BaseModelInfo
from tests.trainer.test_training import CancelAt, Recorder, make_job
from tests.trainer.trainer_data import chat_records, preference_records

pytestmark = pytest.mark.slow
KL_BOUND = 1.0


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rlhf")


@pytest.fixture(scope="module")
def reward_model(workdir: Path, tiny_base: BaseModelInfo) -> TrainingOutcome:
    job = make_job(workdir, tiny_base, preference_records(16, seed=2), MethodSpec(kind="reward_model"),
                   {"max_steps": 6, "learning_rate": 5e-3, "logging_steps": 2, "batch_size": 4, "save_steps": 1000},
                   name="rm")
    return run_training(job, Recorder())


def policy_job(workdir: Path, base: BaseModelInfo, reward_model_dir: Path) -> TrainingJob:
    method = MethodSpec.model_validate({"kind": "rlhf", "rlhf": {
        "algorithm": "grpo", "reward_model_version": "order-rm.v1", "kl_bound": KL_BOUND,
        "reward_functions": [{"kind": "keywords", "keywords": ["{"]}],
        "num_generations": 4, "max_completion_tokens": 10}})
    job = make_job(workdir, base, chat_records(16, seed=2), method,
                   {"max_steps": 6, "learning_rate": 5e-3, "logging_steps": 1, "batch_size": 8, "save_steps": 3},
                   name="policy")
    job.reward_model_dir = reward_model_dir
    return job


@pytest.fixture(scope="module")
def policy(workdir: Path, tiny_base: BaseModelInfo, reward_model: TrainingOutcome) -> dict[str, Any]:
    """The policy run cancelled at step 4, after its step-3 checkpoint, then resumed to the end."""
    job = policy_job(workdir, tiny_base, reward_model.model_dir)
    with pytest.raises(TrainingCancelledError) as cancelled:
        run_training(job, CancelAt(4))
    left_behind = {"checkpoint": last_complete_checkpoint(job.workdir / "run"),
                   "cancelled_at": cancelled.value.at_step, "final": (job.workdir / "final").exists()}
    hooks = Recorder()
    return {"job": job, "hooks": hooks, "outcome": run_training(job, hooks), **left_behind}


def test_reward_model_ranks_held_out_pairs_well_above_chance(reward_model: TrainingOutcome,
                                                             tiny_base: BaseModelInfo) -> None:
    tokenizer = load_tokenizer(tiny_base)
    model = load_reward_model(tiny_base, reward_model.model_dir)
    held_out = preference_records(12, seed=99)
    prompts = [r["prompt"] for r in held_out]
    chosen = reward_model_scores(model, tokenizer, prompts, [r["chosen"] for r in held_out])
    rejected = reward_model_scores(model, tokenizer, prompts, [r["rejected"] for r in held_out])
    accuracy, ece = pairwise_accuracy(chosen, rejected), expected_calibration_error(chosen, rejected)
    print(f"reward model: held-out pairwise accuracy {accuracy:.3f}, ECE {ece:.4f}")
    assert accuracy >= 0.9 and ece < 0.2
    assert (reward_model.model_dir / "adapter_config.json").exists()


def test_rlhf_raises_held_out_reward_with_kl_within_bound(policy: dict[str, Any], tiny_base: BaseModelInfo) -> None:
    from peft import PeftModel

    job, outcome = policy["job"], policy["outcome"]
    tokenizer = load_tokenizer(tiny_base)
    held_out, reward = chat_records(4, seed=99), JobReward(job)
    before = reward.mean(load_model(tiny_base, 0), tokenizer, held_out)
    tuned = PeftModel.from_pretrained(load_model(tiny_base, 0), str(outcome.model_dir))
    after = reward.mean(tuned, tokenizer, held_out)
    kl = [p.kl for p in policy["hooks"].progress_events]
    print(f"rlhf: held-out mean reward {before:.3f} -> {after:.3f}, max KL {outcome.metrics['kl_max']:.3f} "
          f"<= {KL_BOUND}")
    assert after > before + 0.5
    assert all(k is not None for k in kl) and outcome.metrics["kl_max"] <= KL_BOUND
    assert all(p.reward is not None for p in policy["hooks"].progress_events)


def test_cancel_stops_the_rlhf_run_and_its_checkpoint_resumes(policy: dict[str, Any]) -> None:
    assert policy["cancelled_at"] == 4 and not policy["final"]
    assert policy["checkpoint"].name == "checkpoint-3"
    assert policy["outcome"].resumed_from_step == 3 and policy["hooks"].started_at == [3]
    assert [p.step for p in policy["hooks"].progress_events] == [4, 5, 6]
