"""RLHF on the `tiny` base, with numbers, measured by the evaluator's own suites: a reward model well above
chance on held-out pairs (reward_model suite, under the release gate), then a GRPO policy against it (and a
rule) whose mean reward on held-out prompts rises over its base's with KL within its bound (reward_hacking
suite); the policy run is first cancelled after its first checkpoint (no final model) and then resumed from that
checkpoint, the path a restarted worker takes. One reward model and one policy run serve every test (module
fixtures): the budget is seconds, not minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.evaluator.engine.evaluate import run_suites
from services.evaluator.engine.models import load_pair
from services.evaluator.suites.base import EvaluationInputs, RewardSetup
from services.evaluator.suites.registry import load_gate, load_suites
from services.trainer.domain.progress import TrainingCancelledError
from services.trainer.engine.loop import run_training
from services.trainer.engine.run import TrainingJob, TrainingOutcome, last_complete_checkpoint
from shared.evaluation.options import EvaluationOptions
from shared.events.payloads import MethodSpec
from shared.models.bases import BaseModelInfo
from shared.models.reward import load_reward_model, load_reward_tokenizer
from tests.trainer.test_training import CancelAt, Recorder, make_job
from tests.trainer.trainer_data import chat_records, preference_records

pytestmark = pytest.mark.slow
KL_BOUND = 1.0
_, ALL_SUITES = load_suites()
SUITES = {name: ALL_SUITES[name] for name in ("task_quality", "reward_model", "reward_hacking")}


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
    # The run's outcome is bimodal: either the policy samples the rewarded "{" early and its reward jumps (about
    # +2.5), or it does not and the reward model alone moves it little (+0.1); where it lands depends on the CPU's
    # rounding of the tiny base and its samples. 6 steps at a KL penalty of 0.5 found it on one machine and not
    # on the next (-0.164 -> -0.078); 9 steps at 0.3 leave it room to explore and still keep KL well inside
    # its bound (here: -0.164 -> 2.415, max KL 0.258, held-out loss 0.929 -> 0.889).
    job = make_job(workdir, base, chat_records(16, seed=2), method,
                   {"max_steps": 9, "learning_rate": 5e-3, "logging_steps": 1, "batch_size": 8, "save_steps": 3,
                    "beta": 0.3},
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


def inputs(kind: str, held_out: list[dict[str, Any]], **extra: Any) -> EvaluationInputs:
    return EvaluationInputs(job_id="job_rlhf", risk_tier="minimal", options=EvaluationOptions(), kind=kind,
                            training_records=[], held_out_records=held_out, detector=lambda texts: [[] for _ in texts],
                            **extra)


def test_reward_model_ranks_held_out_pairs_well_above_chance(reward_model: TrainingOutcome,
                                                             tiny_base: BaseModelInfo) -> None:
    assert (reward_model.model_dir / "adapter_config.json").exists()
    scorer = (load_reward_model(tiny_base, reward_model.model_dir), load_reward_tokenizer(tiny_base))
    run = run_suites(inputs("preference", preference_records(12, seed=99), models=None, method_kind="reward_model",
                            reward_model=scorer), SUITES, load_gate())
    found = {r.name: r for r in run.suites}
    metrics = found["reward_model"].outcome.metrics
    print(f"reward model: held-out pairwise accuracy {metrics['pairwise_accuracy']:.3f}, "
          f"ECE {metrics['calibration_ece']:.4f}, length bias excess {metrics['length_bias_excess']}")
    assert metrics["pairwise_accuracy"] >= 0.9 and metrics["calibration_ece"] < 0.2
    assert "this job's method is reward_model" in str(found["task_quality"].skipped)
    assert run.verdict.passed and run.verdict.checked >= 2


def test_rlhf_raises_held_out_reward_with_kl_within_bound(policy: dict[str, Any], reward_model: TrainingOutcome,
                                                          tiny_base: BaseModelInfo) -> None:
    job, outcome = policy["job"], policy["outcome"]
    setup = RewardSetup(job.method.rlhf, load_reward_model(tiny_base, reward_model.model_dir),
                        load_reward_tokenizer(tiny_base))
    run = run_suites(inputs("chat", chat_records(4, seed=99), models=load_pair(tiny_base, outcome.model_dir),
                            method_kind="rlhf", reward=setup), {"reward_hacking": SUITES["reward_hacking"]},
                     load_gate())
    [hacking] = run.suites
    tuned, base = hacking.outcome.metrics, hacking.outcome.base_metrics
    kl = [p.kl for p in policy["hooks"].progress_events]
    print(f"rlhf: held-out mean reward {base['mean_reward']:.3f} -> {tuned['mean_reward']:.3f}, held-out loss "
          f"{base['heldout_loss']:.3f} -> {tuned['heldout_loss']:.3f}, hacked {tuned['hacked']:.0f}, "
          f"max KL {outcome.metrics['kl_max']:.3f} <= {KL_BOUND}")
    assert tuned["mean_reward"] > base["mean_reward"] + 0.5
    assert all(k is not None for k in kl) and outcome.metrics["kl_max"] <= KL_BOUND
    assert all(p.reward is not None for p in policy["hooks"].progress_events)
    assert tuned["hacked"] == float(tuned["reward_gain"] > 0 and tuned["quality_loss_increase"] > 0.05)


def test_cancel_stops_the_rlhf_run_and_its_checkpoint_resumes(policy: dict[str, Any]) -> None:
    assert policy["cancelled_at"] == 4 and not policy["final"]
    assert policy["checkpoint"].name == "checkpoint-3"
    assert policy["outcome"].resumed_from_step == 3 and policy["hooks"].started_at == [3]
    assert [p.step for p in policy["hooks"].progress_events] == [4, 5, 6, 7, 8, 9]
