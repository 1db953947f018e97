"""The registry's rules in force: the policy, the named tiering rules, how long approvers have, the
evaluation suites the evaluator runs (job specs and re-runs may name only those), and the clock every
decision is timed by (a parameter, so tests and replays control time)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.registry.domain.intake import IntakeDecision, evaluate_intake
from services.registry.domain.policy import Policy, RiskRuleRegistry
from services.registry.domain.reward_models import RlhfVersions
from shared.events.payloads import JobSpec


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Governance:
    policy: Policy
    rules: RiskRuleRegistry
    approval_ttl_s: float
    evaluation_suites: frozenset[str]
    clock: Callable[[], datetime] = field(default=utcnow)

    @property
    def approval_ttl(self) -> timedelta:
        return timedelta(seconds=self.approval_ttl_s)

    def now(self) -> datetime:
        return self.clock()

    def intake(self, spec: JobSpec, *, base_is_directory: bool,
               rlhf: RlhfVersions | None = None) -> IntakeDecision:
        return evaluate_intake(
            spec, self.policy, self.rules, base_is_directory=base_is_directory,
            evaluation_suites=self.evaluation_suites, rlhf=rlhf,
        )
