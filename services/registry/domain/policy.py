"""Registry policy: a validated YAML document plus a registry of named AI Act tiering rules.

Rules are looked up by name, like Presidio's recognizer registry: the YAML lists which rules run, in
which order and with which parameters, and a deployment can register its own rule functions under new
names without touching the built-in ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.registry.domain.incidents import SEVERITIES
from shared.events.payloads import UseCase
from shared.models.catalogue import CATALOGUE_SOURCE, BaseModelCatalogue, load_catalogue
from shared.validation import describe_validation_error

RiskTier = Literal["minimal", "limited", "high"]
TierOrProhibited = Literal["minimal", "limited", "high", "prohibited"]


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file, the field and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LicencePolicy(_Strict):
    allowed: list[str] = Field(default_factory=list)


class JustificationPolicy(_Strict):
    required_fields: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _fields_exist(self) -> JustificationPolicy:
        unknown = [name for name in self.required_fields if name not in UseCase.model_fields]
        if unknown:
            raise ValueError(f"required_fields names fields UseCase does not have: {', '.join(unknown)}")
        return self


class RuleConfig(_Strict):
    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class RiskPolicy(_Strict):
    default_tier: RiskTier = "minimal"
    rules: list[RuleConfig] = Field(default_factory=list)


class AdvicePolicy(_Strict):
    min_examples: int = Field(default=2000, ge=1)


class ApprovalPolicy(_Strict):
    required: dict[RiskTier, int] = Field(default_factory=lambda: {"minimal": 1, "limited": 1, "high": 2})

    @model_validator(mode="after")
    def _sane(self) -> ApprovalPolicy:
        for tier in ("minimal", "limited", "high"):
            if self.required.get(tier, 0) < 1:  # type: ignore[call-overload]
                raise ValueError(f"required.{tier}: at least one approver is needed for every tier")
        if self.required["high"] < 2:
            raise ValueError("required.high: high-risk jobs need at least two distinct approvers")
        return self


class ErasurePolicy(_Strict):
    # 0: versions trained on an erased subject's records are retired at once; more: retired after this many
    # hours (serving continues meanwhile, e.g. until a replacement is deployed), then by the registry's timer.
    retirement_grace_hours: float = Field(default=0, ge=0, le=24 * 90)


class MonitoringPolicy(_Strict):
    """What the registry does when recurring monitoring reports on a deployed version (domain/monitoring.py):
    `flag` records it on the version; `retire` records it and retires the version (the gateway stops
    serving it at once)."""

    on_drift: Literal["flag", "retire"] = "flag"
    on_memorisation: Literal["flag", "retire"] = "retire"
    # An incident (EU AI Act Art. 73, domain/incidents.py) opened by the registry on each report, with this
    # severity (its reporting deadline follows); null: none. A model reproducing its training data may leak
    # personal data (a fundamental-rights infringement, Art. 3(49)(c)): serious until a person judges it.
    drift_incident: str | None = None
    memorisation_incident: str | None = "serious"

    @field_validator("drift_incident", "memorisation_incident")
    @classmethod
    def _known_severity(cls, value: str | None) -> str | None:
        if value is not None and value not in SEVERITIES:
            raise ValueError(f"unknown incident severity {value!r} (known: {', '.join(SEVERITIES)}, or null)")
        return value


class Policy(_Strict):
    licences: LicencePolicy
    justification: JustificationPolicy
    risk: RiskPolicy
    advice: AdvicePolicy = Field(default_factory=AdvicePolicy)
    approvals: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    erasure: ErasurePolicy = Field(default_factory=ErasurePolicy)
    monitoring: MonitoringPolicy = Field(default_factory=MonitoringPolicy)
    # Facts about the known bases (licences, sources) are not policy: they come from the shared catalogue,
    # which the trainer reads too. A policy file cannot set them (see _facts_are_not_policy).
    base_models: BaseModelCatalogue = Field(default_factory=load_catalogue, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _facts_are_not_policy(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("known_bases", "base_models"):
                if key in data:
                    raise ValueError(
                        f"{key}: base models and their licences live in the base-model catalogue "
                        f"({CATALOGUE_SOURCE}); a policy only lists the allowed licences (licences.allowed)"
                    )
        return data


# ---------------------------------------------------------------- tiering rules


def normalise_term(value: str) -> str:
    """'Credit Scoring' and 'credit-scoring' are the same declared area."""
    return "_".join(value.strip().lower().replace("-", " ").replace("/", " ").split())


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    tier: TierOrProhibited
    rule: str  # "<rule name>:<what matched>", recorded with the job and later in the AIBOM
    reason: str


RiskRule = Callable[[UseCase, dict[str, Any]], RuleOutcome | None]


def _terms(values: Any, where: str) -> set[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise PolicyError(f"{where}: expected a list of strings")
    return {normalise_term(v) for v in values}


def prohibited_practice(use_case: UseCase, params: dict[str, Any]) -> RuleOutcome | None:
    banned = _terms(params.get("practices", []), "prohibited_practice.params.practices")
    for practice in use_case.practices:
        if normalise_term(practice) in banned:
            return RuleOutcome(
                "prohibited",
                f"prohibited_practice:{normalise_term(practice)}",
                f"declared practice '{practice}' is prohibited by EU AI Act Art. 5",
            )
    return None


def annex_iii_area(use_case: UseCase, params: dict[str, Any]) -> RuleOutcome | None:
    domains = params.get("domains", {})
    if not isinstance(domains, dict):
        raise PolicyError("annex_iii_area.params.domains: expected a mapping of area -> list of aliases")
    declared = normalise_term(use_case.domain)
    for area, aliases in domains.items():
        names = {normalise_term(area)} | _terms(aliases or [], f"annex_iii_area.params.domains.{area}")
        if declared in names:
            return RuleOutcome(
                "high",
                f"annex_iii_area:{normalise_term(area)}",
                f"domain '{use_case.domain}' is the EU AI Act Annex III area '{area}'",
            )
    return None


def transparency_obligation(use_case: UseCase, params: dict[str, Any]) -> RuleOutcome | None:
    practices = _terms(params.get("practices", []), "transparency_obligation.params.practices")
    domains = _terms(params.get("domains", []), "transparency_obligation.params.domains")
    for practice in use_case.practices:
        if normalise_term(practice) in practices:
            return RuleOutcome(
                "limited",
                f"transparency_obligation:{normalise_term(practice)}",
                f"practice '{practice}' carries EU AI Act Art. 50 transparency duties",
            )
    if normalise_term(use_case.domain) in domains:
        return RuleOutcome(
            "limited",
            f"transparency_obligation:{normalise_term(use_case.domain)}",
            f"domain '{use_case.domain}' carries EU AI Act Art. 50 transparency duties",
        )
    return None


@dataclass
class RiskRuleRegistry:
    """Named tiering rules; `default()` gives a fresh registry with the built-ins."""

    rules: dict[str, RiskRule] = field(default_factory=dict)

    def add(self, name: str, rule: RiskRule) -> None:
        if name in self.rules:
            raise ValueError(f"risk rule '{name}' is already registered")
        self.rules[name] = rule

    def get(self, name: str) -> RiskRule:
        try:
            return self.rules[name]
        except KeyError:
            known = ", ".join(sorted(self.rules))
            raise PolicyError(f"risk.rules: unknown rule '{name}' (registered: {known})") from None

    @classmethod
    def default(cls) -> RiskRuleRegistry:
        registry = cls()
        registry.add("prohibited_practice", prohibited_practice)
        registry.add("annex_iii_area", annex_iii_area)
        registry.add("transparency_obligation", transparency_obligation)
        return registry


# ---------------------------------------------------------------- parsing (the file is read by adapters/policy_file.py)


def parse_policy(document: Any, source: str, registry: RiskRuleRegistry | None = None) -> Policy:
    if not isinstance(document, dict):
        raise PolicyError(f"{source}: the policy must be a YAML mapping, got {type(document).__name__}")
    try:
        policy = Policy.model_validate(document)
    except ValidationError as exc:
        details = describe_validation_error(exc, root="policy")
        raise PolicyError(f"{source}: {details}") from None
    # Unknown rule names fail at load time rather than on the first job that reaches them.
    rules = registry or RiskRuleRegistry.default()
    for index, rule in enumerate(policy.risk.rules):
        try:
            rules.get(rule.name)
        except PolicyError as exc:
            raise PolicyError(f"{source}: risk.rules[{index}]: {exc}") from None
    return policy
