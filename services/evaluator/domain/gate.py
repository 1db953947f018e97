"""The release gate: a YAML policy with a threshold per metric and per base-vs-fine-tuned regression for
each risk tier, and the verdict it gives on a set of suite results. Pure: numbers in, verdict out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Tier = Literal["minimal", "limited", "high"]
RULES = ("max", "min", "max_increase", "max_decrease")


class Threshold(BaseModel):
    """One check of `suite.metric`. max/min bound the fine-tuned value; max_increase bounds tuned - base
    (for metrics where higher is worse, such as attack success), max_decrease bounds base - tuned (where
    higher is better, such as accuracy). A metric the evaluation did not measure fails unless optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max: float | None = None
    min: float | None = None
    max_increase: float | None = Field(default=None, ge=0)
    max_decrease: float | None = Field(default=None, ge=0)
    optional: bool = False

    @model_validator(mode="after")
    def _one_rule_at_least(self) -> Threshold:
        if all(getattr(self, rule) is None for rule in RULES):
            raise ValueError(f"a threshold needs at least one of {', '.join(RULES)}")
        return self


class TierPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: dict[str, Threshold] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _metric_names(self) -> TierPolicy:
        bad = [name for name in self.thresholds if name.count(".") != 1]
        if bad:
            raise ValueError(f"threshold names must be suite.metric: {', '.join(bad)}")
        return self


class GatePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    tiers: dict[Tier, TierPolicy]

    @model_validator(mode="after")
    def _every_tier(self) -> GatePolicy:
        missing = sorted(set(Tier.__args__) - set(self.tiers))  # type: ignore[attr-defined]
        if missing:
            raise ValueError(f"gate policy {self.name!r} has no thresholds for tier(s) {', '.join(missing)}")
        return self


class Failure(BaseModel):
    model_config = ConfigDict(frozen=True)

    metric: str
    rule: str
    value: float | None
    threshold: float
    base: float | None = None

    def describe(self) -> str:
        if self.value is None:
            return f"{self.metric} was not measured (the gate requires it)"
        if self.rule in ("max_increase", "max_decrease"):
            change = (self.value - self.base) if self.base is not None else float("nan")
            return (f"{self.metric} = {self.value:.4g} vs base {self.base:.4g} ({change:+.4g}); "
                    f"{self.rule} is {self.threshold:.4g}")
        return f"{self.metric} = {self.value:.4g}; {self.rule} is {self.threshold:.4g}"


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    policy: str
    risk_tier: Tier
    passed: bool
    failures: list[Failure]
    checked: int


Measured = Mapping[str, tuple[float | None, float | None]]
"""`suite.metric` -> (fine-tuned value, base value)."""


def judge(policy: GatePolicy, tier: Tier, measured: Measured, ran: set[str]) -> Verdict:
    """Check every threshold of the tier whose suite ran (a suite deliberately not selected for a re-run
    is not judged; a suite that ran but lacks the metric fails the check)."""
    failures: list[Failure] = []
    checked = 0
    for metric, threshold in sorted(policy.tiers[tier].thresholds.items()):
        suite = metric.split(".", 1)[0]
        if suite not in ran:
            continue
        value, base = measured.get(metric, (None, None))
        checked += 1
        if value is None:
            if not threshold.optional:
                bound = next(getattr(threshold, r) for r in RULES if getattr(threshold, r) is not None)
                failures.append(Failure(metric=metric, rule="required", value=None, threshold=bound))
            continue
        if threshold.max is not None and value > threshold.max:
            failures.append(Failure(metric=metric, rule="max", value=value, threshold=threshold.max, base=base))
        if threshold.min is not None and value < threshold.min:
            failures.append(Failure(metric=metric, rule="min", value=value, threshold=threshold.min, base=base))
        if base is not None:
            if threshold.max_increase is not None and value - base > threshold.max_increase:
                failures.append(Failure(metric=metric, rule="max_increase", value=value,
                                        threshold=threshold.max_increase, base=base))
            if threshold.max_decrease is not None and base - value > threshold.max_decrease:
                failures.append(Failure(metric=metric, rule="max_decrease", value=value,
                                        threshold=threshold.max_decrease, base=base))
    return Verdict(policy=policy.name, risk_tier=tier, passed=not failures, failures=failures, checked=checked)
