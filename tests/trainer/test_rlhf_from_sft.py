"""An rlhf policy that starts from an SFT version, trained with RLOO, its length set in epochs (tiny, CPU).

One short LoRA SFT run stands in for the approved SFT version; an RLOO run then trains that adapter (not a
fresh one) against a rule reward for exactly one epoch: every prompt sampled once as a group. The first step's
KL is ~0 because TRL's reference is a frozen copy of the SFT adapter (against the base it would not be: the
SFT run moved the model), reward and KL are reported every step, and the artefact is one adapter on the base
with the SFT version's shape (TRL's reference copy is not shipped)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from services.trainer.engine.loop import run_training
from services.trainer.engine.run import TrainingOutcome
from shared.events.payloads import MethodSpec
from shared.models.bases import BaseModelInfo
from tests.trainer.test_training import Recorder, make_job
from tests.trainer.trainer_data import chat_records

pytestmark = pytest.mark.slow
PROMPTS, GROUP, BATCH = 8, 4, 8  # BATCH completions a step = 2 prompts sampled GROUP times each
KL_BOUND = 2.0


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rlhf_from_sft")


@pytest.fixture(scope="module")
def sft(workdir: Path, tiny_base: BaseModelInfo) -> TrainingOutcome:
    job = make_job(workdir, tiny_base, chat_records(24, seed=3), MethodSpec(kind="sft"),
                   {"max_steps": 12, "learning_rate": 5e-3, "lora_r": 8, "logging_steps": 4, "save_steps": 1000},
                   name="sft")
    return run_training(job, Recorder())


@pytest.fixture(scope="module")
def rloo(workdir: Path, tiny_base: BaseModelInfo, sft: TrainingOutcome) -> dict[str, Any]:
    method = MethodSpec.model_validate({"kind": "rlhf", "rlhf": {
        "algorithm": "rloo", "policy_version": "orders.v1", "kl_bound": KL_BOUND, "num_generations": GROUP,
        "max_completion_tokens": 8, "reward_functions": [{"kind": "keywords", "keywords": ["{", "name"]}]}})
    job = make_job(workdir, tiny_base, chat_records(PROMPTS, seed=4), method,
                   {"epochs": 1, "batch_size": BATCH, "learning_rate": 2e-3, "lora_r": 8, "logging_steps": 1,
                    "save_steps": 1000}, name="rloo")
    job.policy_dir = sft.model_dir
    hooks = Recorder()
    return {"job": job, "hooks": hooks, "outcome": run_training(job, hooks)}


def test_one_epoch_of_rloo_samples_every_prompt_once(rloo: dict[str, Any]) -> None:
    job, outcome, progress = rloo["job"], rloo["outcome"], rloo["hooks"].progress_events
    steps = math.ceil(PROMPTS / (BATCH // GROUP))  # 4, where counting completions as records would give 1
    assert job.params.total_steps(PROMPTS, job.method.samples_per_record) == steps
    assert [p.step for p in progress] == list(range(1, steps + 1))
    assert progress[-1].epoch == pytest.approx(1.0)  # TRL's own epoch counter agrees: one pass over the prompts
    assert outcome.metrics["steps"] == steps


def test_rloo_reports_reward_and_kl_to_the_sft_policy_within_its_bound(rloo: dict[str, Any],
                                                                        sft: TrainingOutcome) -> None:
    progress, metrics = rloo["hooks"].progress_events, rloo["outcome"].metrics
    assert all(p.reward is not None and p.kl is not None for p in progress)
    print(f"rloo from sft: reward {metrics['reward_first']:.3f} -> {metrics['reward_last']:.3f}, KL per step "
          f"{[round(p.kl or 0.0, 5) for p in progress]}, SFT loss {sft.metrics['first_loss']:.3f} -> "
          f"{sft.metrics['final_loss']:.3f}")
    assert sft.metrics["final_loss"] < 0.7 * sft.metrics["first_loss"]  # the SFT policy moved away from the base
    assert progress[0].kl is not None and progress[0].kl < 1e-3  # the reference is the SFT adapter, not the base
    assert 0 < metrics["kl_max"] <= KL_BOUND and metrics["kl_bound"] == KL_BOUND


def test_the_policy_artefact_is_the_sft_adapter_trained_on(rloo: dict[str, Any], sft: TrainingOutcome) -> None:
    import torch
    from safetensors.torch import load_file

    final = rloo["outcome"].model_dir
    assert not (final / "ref").exists(), "TRL's frozen reference copy is not part of the policy"
    config = json.loads((final / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["base_model_name_or_path"] == "tiny"
    before = load_file(sft.model_dir / "adapter_model.safetensors")
    after = load_file(final / "adapter_model.safetensors")
    assert before.keys() == after.keys()
    lora_b = sorted(k for k in before if "lora_B" in k)
    old, new = (torch.cat([weights[k].flatten() for k in lora_b]) for weights in (before, after))
    # A fresh adapter's B matrices start at zero, so it would point anywhere; this one is the SFT's, trained on.
    cosine = float(torch.nn.functional.cosine_similarity(old, new, dim=0))
    assert old.norm() > 0 and not torch.equal(old, new) and cosine > 0.8, cosine


def test_the_evaluator_compares_the_policy_with_the_sft_version_it_started_from(
    rloo: dict[str, Any], sft: TrainingOutcome, tiny_base: BaseModelInfo
) -> None:
    """With start_dir, the pair's comparison side is the SFT adapter on the base, not the bare base: reward
    hacking asks whether this job's RL made quality fall, and the SFT before it is not this job's doing."""
    from services.evaluator.engine.models import load_pair

    policy_dir = rloo["outcome"].model_dir
    pair = load_pair(tiny_base, policy_dir, start_dir=sft.model_dir)
    scored = [("user: Extract the order as JSON: Ada Berg ordered 2 lamps.\nassistant: ", '{"name": "Ada Berg"')]
    alone_sft = load_pair(tiny_base, sft.model_dir).tuned.score(scored)[0].logprob
    alone_policy = load_pair(tiny_base, policy_dir).tuned.score(scored)[0].logprob
    bare_base = load_pair(tiny_base, sft.model_dir).base.score(scored)[0].logprob
    # Switching adapters back and forth in one model gives each side its own weights, in any order.
    for _ in range(2):
        assert pair.base.score(scored)[0].logprob == pytest.approx(alone_sft, abs=1e-4)
        assert pair.tuned.score(scored)[0].logprob == pytest.approx(alone_policy, abs=1e-4)
    assert abs(alone_sft - bare_base) > 1e-2  # the SFT run moved the model: comparing with the base would differ
    with pytest.raises(ValueError, match="LoRA adapters on both sides"):
        load_pair(tiny_base, policy_dir, start_dir=tiny_base.path)
