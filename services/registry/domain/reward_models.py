"""RLHF's rules at the registry: the justification an rlhf job owes (DPO first), the reward-model version it
trains against (approved, not retired, a reward model on the policy's base), the SFT version its policy may
start from (approved, not retired, a LoRA SFT version on the same base with the LoRA shape the job declares),
and why a reward model is never deployed to the gateway. Pure: the caller looks the versions up and passes
what it found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.registry.domain.model_states import ModelState
from shared.events.payloads import JobSpec
from shared.training import HyperparameterError, split_seed, validate_hyperparameters

REWARD_MODEL_KIND = "reward_model"
POLICY_KINDS = frozenset({"sft"})
# What fixes an adapter's shape: the policy trains the starting version's adapter, so the job must declare it.
LORA_SHAPE = ("lora_r", "lora_alpha", "lora_target_modules")


@dataclass(frozen=True)
class VersionOnRecord:
    """A registered model version an rlhf job names, with the method (and adapter) its job trained it by."""

    version_id: str
    state: str
    method_kind: str
    base_model: str
    artifact: dict[str, Any]
    aibom_sha256: str | None = None
    adapter: str = "lora"
    lora_shape: dict[str, Any] | None = None  # LORA_SHAPE of its job's hyperparameters (defaults filled)


@dataclass(frozen=True)
class RlhfVersions:
    """The versions an rlhf job names, as the registry has them on record (None: not named, or not found)."""

    reward_model: VersionOnRecord | None = None
    policy: VersionOnRecord | None = None


def reward_model_version(spec: JobSpec) -> str | None:
    return spec.method.rlhf.reward_model_version if spec.method.rlhf is not None else None


def policy_version(spec: JobSpec) -> str | None:
    return spec.method.rlhf.policy_version if spec.method.rlhf is not None else None


def lora_shape(spec: JobSpec) -> dict[str, Any] | None:
    """The LoRA shape a job trains with (its hyperparameters, defaults filled); None when they do not parse
    (intake reports that on its own)."""
    try:
        params = validate_hyperparameters(split_seed(spec.hyperparameters)[1], spec.method)
    except HyperparameterError:
        return None
    return {name: getattr(params, name) for name in LORA_SHAPE}


def rlhf_justification_problems(spec: JobSpec) -> list[str]:
    if spec.method.kind != "rlhf" or spec.use_case.why_not_dpo.strip():
        return []
    return [
        "use_case.why_not_dpo: an rlhf job must say why DPO is not enough (DPO learns from the same preference "
        "pairs without a reward model or sampling, at a fraction of the cost; RLHF earns its cost when the "
        "reward must generalise beyond the pairs, is partly rule-based, or needs online sampling)"
    ]


def reward_model_problem(spec: JobSpec, found: VersionOnRecord | None) -> str | None:
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


def policy_problem(spec: JobSpec, found: VersionOnRecord | None) -> str | None:
    """Why the job's starting SFT version cannot be trained on, or None when it can (or none is named)."""
    version = policy_version(spec)
    if version is None:
        return None
    where = f"method.rlhf.policy_version: {version}"
    if found is None:
        return f"{where} is not a registered model version"
    if found.method_kind not in POLICY_KINDS or found.adapter != "lora":
        return (f"{where} was trained by method {found.method_kind} ({found.adapter}); an rlhf policy starts from "
                "a LoRA sft version")
    if found.state == ModelState.RETIRED:
        return f"{where} is retired; start from an approved version"
    if found.state not in (ModelState.APPROVED, ModelState.DEPRECATED, ModelState.DEPLOYED):
        return f"{where} is {found.state}; an rlhf policy starts only from an approved version"
    if found.base_model != spec.base_model:
        return (f"{where} is an adapter on base {found.base_model}, the job's base is {spec.base_model}: the "
                "starting version must be on the job's base")
    wanted = lora_shape(spec)
    if wanted is not None and found.lora_shape is not None and wanted != found.lora_shape:
        differ = ", ".join(f"{k} {wanted[k]} (the version has {found.lora_shape[k]})"
                           for k in LORA_SHAPE if wanted[k] != found.lora_shape[k])
        return f"{where}: the policy trains that version's adapter, so the job's LoRA shape must match: {differ}"
    return None


def rlhf_version_problems(spec: JobSpec, found: RlhfVersions) -> list[str]:
    """Every reason the versions an rlhf job names cannot be used (intake and approval ask the same)."""
    problems = (reward_model_problem(spec, found.reward_model), policy_problem(spec, found.policy))
    return [p for p in problems if p is not None]


def deploy_refusal(method_kind: str, version_id: str) -> str | None:
    if method_kind != REWARD_MODEL_KIND:
        return None
    return (f"model version {version_id} is a reward model: it scores answers for rlhf jobs and generates "
            "nothing, so it is not deployed to the gateway")
