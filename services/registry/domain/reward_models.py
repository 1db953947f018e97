"""RLHF's rules at the registry: the justification an rlhf job owes (DPO first), the reward-model version it
trains against (approved, not retired, a reward model on the policy's base), and why a reward model is
never deployed to the gateway. Pure: the caller looks the version up and passes what it found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.registry.domain.model_states import ModelState
from shared.events.payloads import JobSpec

REWARD_MODEL_KIND = "reward_model"


@dataclass(frozen=True)
class RewardModelOnRecord:
    """A registered model version an rlhf job names, with the method its job trained it by."""

    version_id: str
    state: str
    method_kind: str
    base_model: str
    artifact: dict[str, Any]
    aibom_sha256: str | None = None


def reward_model_version(spec: JobSpec) -> str | None:
    return spec.method.rlhf.reward_model_version if spec.method.rlhf is not None else None


def rlhf_justification_problems(spec: JobSpec) -> list[str]:
    if spec.method.kind != "rlhf" or spec.use_case.why_not_dpo.strip():
        return []
    return [
        "use_case.why_not_dpo: an rlhf job must say why DPO is not enough (DPO learns from the same preference "
        "pairs without a reward model or sampling, at a fraction of the cost; RLHF earns its cost when the "
        "reward must generalise beyond the pairs, is partly rule-based, or needs online sampling)"
    ]


def reward_model_problem(spec: JobSpec, found: RewardModelOnRecord | None) -> str | None:
    """Why the job's reward-model version cannot be trained against, or None when it can (or none is named)."""
    version = reward_model_version(spec)
    if version is None:
        return None
    where = f"method.rlhf.reward_model_version: {version}"
    if found is None:
        return f"{where} is not a registered model version"
    if found.method_kind != REWARD_MODEL_KIND:
        return f"{where} was trained by method {found.method_kind}, not reward_model"
    if found.state == ModelState.RETIRED:
        return f"{where} is retired; train against an approved reward model"
    if found.state != ModelState.APPROVED:
        return f"{where} is {found.state}; a reward model must be approved before an rlhf job trains against it"
    if found.base_model != spec.base_model:
        return (f"{where} scores text on base {found.base_model}, the policy is {spec.base_model}: the reward "
                "model must share the policy's base (its tokenizer)")
    return None


def deploy_refusal(method_kind: str, version_id: str) -> str | None:
    if method_kind != REWARD_MODEL_KIND:
        return None
    return (f"model version {version_id} is a reward model: it scores answers for rlhf jobs and generates "
            "nothing, so it is not deployed to the gateway")
