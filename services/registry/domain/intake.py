"""Intake of a job request: justification, base-model licence, EU AI Act tier and advice, all decided
from the spec and the policy. Every failing check is reported, not only the first."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.registry.domain.advice import Advice, advise
from services.registry.domain.evaluation import suite_problems
from services.registry.domain.policy import Policy, RiskRuleRegistry, TierOrProhibited
from services.registry.domain.reward_models import (
    RlhfVersions,
    rlhf_justification_problems,
    rlhf_version_problems,
)
from shared.events.payloads import JobSpec, UseCase
from shared.training import HyperparameterError, split_seed, validate_hyperparameters

LICENCE_LABELS = ("licence", "license")


class LicenceCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    licence_id: str | None
    allowed: bool
    decision: str
    source: str = ""


class TierDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: TierOrProhibited
    rule: str
    reason: str


class IntakeDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepted: bool
    reasons: list[str] = Field(default_factory=list, description="Why it was rejected; empty if accepted.")
    tier: TierDecision
    licence: LicenceCheck
    advice: Advice
    required_approvals: int


def missing_justification(use_case: UseCase, required_fields: list[str]) -> list[str]:
    missing = []
    for name in required_fields:
        value = getattr(use_case, name)
        if value is None or (isinstance(value, str) and not value.strip()):
            missing.append(f"use_case.{name}")
    return missing


def check_licence(spec: JobSpec, policy: Policy, *, base_is_directory: bool) -> LicenceCheck:
    allowed = set(policy.licences.allowed)
    allowlist = ", ".join(policy.licences.allowed) or "(empty)"
    known = policy.base_models.get(spec.base_model)
    if known is not None:
        licence, source = known.licence, f"known base '{spec.base_model}': {known.source}".rstrip(": ")
    elif base_is_directory:
        declared = next((spec.labels[key] for key in LICENCE_LABELS if spec.labels.get(key, "").strip()), None)
        if declared is None:
            return LicenceCheck(
                licence_id=None,
                allowed=False,
                decision=(
                    f"base_model: local directory '{spec.base_model}' has no declared licence; "
                    "set labels.licence to its SPDX id"
                ),
                source="local directory",
            )
        licence, source = declared.strip(), "declared in labels.licence for a local directory"
    else:
        bases = ", ".join(sorted(policy.base_models.names())) or "(none)"
        return LicenceCheck(
            licence_id=None,
            allowed=False,
            decision=(
                f"base_model: '{spec.base_model}' is neither a known base ({bases}) nor an existing local directory"
            ),
        )
    if licence in allowed:
        return LicenceCheck(
            licence_id=licence, allowed=True, decision=f"allowed: {licence} is on the allowlist", source=source
        )
    return LicenceCheck(
        licence_id=licence,
        allowed=False,
        decision=f"base_model: licence {licence} is not on the allowlist ({allowlist})",
        source=source,
    )


def classify_risk(use_case: UseCase, policy: Policy, rules: RiskRuleRegistry) -> TierDecision:
    for rule_config in policy.risk.rules:
        outcome = rules.get(rule_config.name)(use_case, rule_config.params)
        if outcome is not None:
            return TierDecision(tier=outcome.tier, rule=outcome.rule, reason=outcome.reason)
    tier = policy.risk.default_tier
    return TierDecision(tier=tier, rule=f"default:{tier}", reason=f"no tiering rule matched domain '{use_case.domain}'")


def hyperparameter_problems(spec: JobSpec) -> list[str]:
    """The trainer's own schema, applied at intake: a job that could never train is never approved."""
    try:
        _seed, rest = split_seed(spec.hyperparameters)
        validate_hyperparameters(rest, spec.method)
    except HyperparameterError as exc:
        return list(exc.problems)
    return []


def evaluation_problems(spec: JobSpec, known_suites: frozenset[str]) -> list[str]:
    """The job's `evaluation:` options checked against what the pipeline can do, so a job is refused before
    approval rather than failing at the scanner or the evaluator."""
    problems = []
    options = spec.evaluation
    preference = spec.method.kind in ("dpo", "reward_model") or spec.dataset.format == "preference"
    if options.canaries is not None and preference:
        problems.append(
            "evaluation.canaries: canaries can only be planted into chat, prompt_completion or text records; "
            f"this job trains on preference pairs (method.kind {spec.method.kind}, dataset.format "
            f"{spec.dataset.format}): remove evaluation.canaries"
        )
    problems.extend(suite_problems(options.suites, known_suites, where="evaluation.suites"))
    return problems


def decommissioning_problems(spec: JobSpec) -> list[str]:
    """Every model version registered from the job carries the plan, so the job cannot start without one."""
    if spec.decommissioning is not None:
        return []
    return [
        "decommissioning: a decommissioning plan is required (owner, retraining_trigger, "
        "previous_version_retirement, audit_retention_days, optional review_after_days); every model version "
        "trained from this job is registered with it"
    ]


def evaluate_intake(
    spec: JobSpec,
    policy: Policy,
    rules: RiskRuleRegistry,
    *,
    base_is_directory: bool,
    evaluation_suites: frozenset[str],
    rlhf: RlhfVersions | None = None,
) -> IntakeDecision:
    """`rlhf`: the versions an rlhf job names (reward model, starting policy), as the registry has them."""
    reasons: list[str] = []
    missing = missing_justification(spec.use_case, policy.justification.required_fields)
    if missing:
        reasons.append(f"justification incomplete: missing or empty {', '.join(missing)}")
    reasons.extend(rlhf_justification_problems(spec))
    reasons.extend(rlhf_version_problems(spec, rlhf or RlhfVersions()))
    licence = check_licence(spec, policy, base_is_directory=base_is_directory)
    if not licence.allowed:
        reasons.append(licence.decision)
    reasons.extend(hyperparameter_problems(spec))
    reasons.extend(evaluation_problems(spec, evaluation_suites))
    reasons.extend(decommissioning_problems(spec))
    tier = classify_risk(spec.use_case, policy, rules)
    if tier.tier == "prohibited":
        reasons.append(f"use_case.practices: {tier.reason} (rule {tier.rule})")
    advice = advise(
        spec.use_case,
        risk_tier="high" if tier.tier == "prohibited" else tier.tier,
        min_examples=policy.advice.min_examples,
        method_kind=spec.method.kind,
    )
    required = policy.approvals.required["high" if tier.tier == "prohibited" else tier.tier]
    return IntakeDecision(
        accepted=not reasons,
        reasons=reasons,
        tier=tier,
        licence=licence,
        advice=advice,
        required_approvals=required,
    )
