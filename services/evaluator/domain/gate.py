"""The release gate: a YAML policy with a threshold per metric and per base-vs-fine-tuned regression for
each risk tier, and the verdict it gives on a set of suite results. Pure: numbers in, verdict out."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events.evaluation import rule_problem

Tier = Literal["minimal", "limited", "high"]
RULES = ("max", "min", "max_increase", "max_decrease")
RELATIVE = ("max_increase", "max_decrease")


class Threshold(BaseModel):
    """One check of `suite.metric`. max/min bound the fine-tuned value; max_increase bounds tuned - base
    (for metrics where higher is worse, such as attack success), max_decrease bounds base - tuned (where
    higher is better, such as accuracy). A metric the evaluation did not measure fails unless optional, and
    so does a relative rule whose base value was not measured. A value that is not a finite number (NaN,
    +/-inf: the model's output could not be scored) fails every rule of the threshold, optional or not; a
    non-finite base fails the relative rules, which cannot be checked against it."""

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
    """One failed check. `rule` is the rule checked (max, min, max_increase, max_decrease), `required` for
    a metric not measured, or `<rule>:<problem>` when the check could not be made on numbers: problem is
    `value_nan`, `value_inf`, `value_-inf` (the fine-tuned value is not finite), `base_nan`, `base_inf`,
    `base_-inf` (the base value of a relative rule is not finite) or `base_missing`. The rule names the
    problem because JSON (the events) has no NaN or infinity: there `value`/`base` travel as null."""

    model_config = ConfigDict(frozen=True)

    metric: str
    rule: str
    value: float | None
    threshold: float
    base: float | None = None

    @property
    def problem(self) -> str | None:
        """What kept the check off numbers (`value_nan`, `base_missing`, ...), None for a plain miss."""
        return rule_problem(self.rule)

    def describe(self) -> str:
        if self.value is None:
            return f"{self.metric} was not measured (the gate requires it)"
        check = self.rule.split(":", 1)[0]
        bound = f"{check} {self.threshold:.4g}"
        if not math.isfinite(self.value):
            return (f"{self.metric} is {_word(self.value)}: the model's output could not be scored "
                    f"(fails {bound})")
        if check in RELATIVE:
            if self.base is None:
                return (f"{self.metric} = {self.value:.4g} but its base value was not measured: "
                        f"{bound} cannot be checked")
            if not math.isfinite(self.base):
                return (f"{self.metric} = {self.value:.4g} but its base value is {_word(self.base)}: the base model's "
                        f"output could not be scored, so {bound} cannot be checked")
            change = self.value - self.base
            return (f"{self.metric} = {self.value:.4g} vs base {self.base:.4g} ({change:+.4g}); "
                    f"{check} is {self.threshold:.4g}")
        return f"{self.metric} = {self.value:.4g}; {check} is {self.threshold:.4g}"


def _word(value: float) -> str:
    """NaN, inf or -inf, as the reasons and the rule suffixes name a non-finite number."""
    if math.isnan(value):
        return "NaN"
    return "inf" if value > 0 else "-inf"


def _problem(side: str, value: float) -> str:
    return f"{side}_{_word(value).lower()}"


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
    is not judged; a suite that ran but lacks the metric fails the check). A value or base that is not a
    finite number fails the rules it would be compared in: NaN compares False with everything, so an
    unguarded `value > max` would let a model whose output could not be scored pass."""
    failures: list[Failure] = []
    checked = 0
    for metric, threshold in sorted(policy.tiers[tier].thresholds.items()):
        suite = metric.split(".", 1)[0]
        if suite not in ran:
            continue
        value, base = measured.get(metric, (None, None))
        checked += 1
        rules = [(rule, bound) for rule in RULES if (bound := getattr(threshold, rule)) is not None]
        if value is None:
            if not threshold.optional:
                failures.append(Failure(metric=metric, rule="required", value=None, threshold=rules[0][1]))
            continue
        value = float(value)
        base = None if base is None else float(base)
        for rule, bound in rules:
            failure = check(metric, rule, bound, value, base, optional=threshold.optional)
            if failure is not None:
                failures.append(failure)
    return Verdict(policy=policy.name, risk_tier=tier, passed=not failures, failures=failures, checked=checked)


def check(metric: str, rule: str, bound: float, value: float, base: float | None, *,
          optional: bool) -> Failure | None:
    """The failure of one rule of a threshold, or None when it holds (or, optional, cannot be checked).
    Recurring monitoring (domain/monitoring_policy.py) judges its bounds with it too, so what a non-finite
    value or base means is decided here only."""
    def failed(problem: str | None = None) -> Failure:
        name = rule if problem is None else f"{rule}:{problem}"
        return Failure(metric=metric, rule=name, value=value, threshold=bound, base=base)

    if not math.isfinite(value):
        return failed(_problem("value", value))
    if rule == "max":
        return failed() if value > bound else None
    if rule == "min":
        return failed() if value < bound else None
    if base is None:
        return None if optional else failed("base_missing")
    if not math.isfinite(base):
        return failed(_problem("base", base))
    change = value - base if rule == "max_increase" else base - value
    return failed() if change > bound else None
