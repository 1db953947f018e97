"""Recurring monitoring's thresholds (services/evaluator/config/monitoring.yaml) and the comparison of a
scheduled re-evaluation with the evaluation that registered the version. Pure: metrics in, findings out.

A scheduled re-run evaluates the same artefact, so its metrics move only when what it is measured with
moves: a new suite set (new red-team attacks, new PII probes), a changed base or runtime. Each bound limits
the change against the baseline evaluation: `max_increase` for metrics where higher is worse,
`max_decrease` where higher is better. A metric the baseline evaluation did not measure (as a finite number)
is not judged: there is nothing to drift from. A metric the baseline measured that the re-evaluation gives
as a non-finite number (NaN, +/-inf; null on the wire) or not at all is a finding, never a skip: a model
whose output can no longer be scored has drifted as far as it can."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.evaluator.domain.drift import ProductionThresholds
from services.evaluator.domain.gate import check

MEMORISATION_SUITE = "memorisation"


class Bound(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_increase: float | None = Field(default=None, ge=0)
    max_decrease: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_rule(self) -> Bound:
        if self.max_increase is None and self.max_decrease is None:
            raise ValueError("a bound needs max_increase or max_decrease")
        return self


class ScheduledPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suites: list[str] = Field(min_length=1, max_length=20)
    thresholds: dict[str, Bound] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _metrics_of_scheduled_suites(self) -> ScheduledPolicy:
        stray = sorted(m for m in self.thresholds if m.split(".", 1)[0] not in self.suites or "." not in m)
        if stray:
            raise ValueError(f"thresholds name metrics of suites not scheduled (`suite.metric`): {', '.join(stray)}")
        return self


class ProductionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: int = Field(default=200, ge=10, le=100_000, description="Requests per version in the window.")
    check_every: int = Field(default=50, ge=1, description="Requests between two comparisons.")
    length_edges: list[int] = Field(default_factory=lambda: [8, 16, 32, 64, 128, 256], min_length=1,
                                    max_length=50)
    rate_p_value: float = Field(default=0.01, gt=0, lt=1)
    min_rate_change: float = Field(default=0.05, ge=0, le=1)
    psi: float = Field(default=0.25, gt=0)
    max_versions: int = Field(default=1000, ge=1, le=100_000)

    def thresholds(self) -> ProductionThresholds:
        if self.check_every > self.window:
            raise ValueError(f"check_every ({self.check_every}) cannot exceed window ({self.window})")
        return ProductionThresholds(
            window=self.window, check_every=self.check_every, length_edges=tuple(self.length_edges),
            rate_p_value=self.rate_p_value, min_rate_change=self.min_rate_change, psi=self.psi,
            max_versions=self.max_versions,
        )


class MonitoringPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scheduled: ScheduledPolicy
    production: ProductionPolicy = Field(default_factory=ProductionPolicy)

    @model_validator(mode="after")
    def _valid_production(self) -> MonitoringPolicy:
        self.production.thresholds()
        return self

    def narrowed_to(self, configured: Iterable[str]) -> MonitoringPolicy:
        """The scheduled suites (and their bounds) among the configured ones: the bundled policy under a suite
        set of its own. The result may schedule nothing."""
        known = set(configured)
        keep = [name for name in self.scheduled.suites if name in known]
        bounds = {metric: b for metric, b in self.scheduled.thresholds.items() if metric.split(".", 1)[0] in keep}
        scheduled = self.scheduled.model_copy(update={"suites": keep, "thresholds": bounds})
        return self.model_copy(update={"scheduled": scheduled})


MISSING = "value_missing"
"""The problem of a metric the baseline measured and the re-evaluation did not give as a number (null in
evaluation.completed, which is how a NaN or infinite metric travels, or absent)."""


@dataclass(frozen=True)
class Regression:
    metric: str
    statistic: Literal["increase", "decrease"]
    value: float
    """The change against the baseline; NaN when it cannot be computed (see `problem`)."""
    threshold: float
    baseline: float
    current: float | None
    problem: str | None = None
    """None for a change past its bound; else why the bound could not be checked, named as the gate names
    it (domain/gate.py, Failure): `value_nan`, `value_inf`, `value_-inf`, or `value_missing`."""

    @property
    def memorisation(self) -> bool:
        return self.metric.split(".", 1)[0] == MEMORISATION_SUITE

    def describe(self) -> str:
        if self.problem is None:
            return (f"{self.metric} {self.statistic} {self.value:.4g} (baseline {self.baseline:.4g}, now "
                    f"{self.current:.4g}) > {self.threshold:.4g}")
        now = "missing or null" if self.current is None else repr(self.current)
        return (f"{self.metric} is not a finite number in the re-evaluation ({now}; baseline {self.baseline:.4g}): "
                f"the model's output could not be scored, so max_{self.statistic} {self.threshold:.4g} fails")


def flatten(suites: Iterable[Mapping[str, object]]) -> dict[str, float]:
    """`suite.metric` -> value over evaluation.completed's suite summaries (their JSON form). Null metrics
    (not measured, or not a finite number: the wire cannot tell) are left out; regressions() reports a metric
    the baseline had and the re-evaluation lacks. A NaN still present (an in-process summary) is kept."""
    flat: dict[str, float] = {}
    for suite in suites:
        metrics = suite.get("metrics") or {}
        assert isinstance(metrics, Mapping)
        for name, value in metrics.items():
            if isinstance(value, int | float):
                flat[f"{suite['name']}.{name}"] = float(value)
    return flat


def regressions(baseline: Mapping[str, float], current: Mapping[str, float],
                bounds: Mapping[str, Bound]) -> list[Regression]:
    """The bounded metrics past their bound, in metric order (at most one finding per metric)."""
    found = []
    for metric, bound in sorted(bounds.items()):
        before = baseline.get(metric)
        if before is None or not math.isfinite(before):
            continue  # nothing measured to drift from
        now = current.get(metric)
        rules = [(rule, limit) for rule, limit in (("max_increase", bound.max_increase),
                                                   ("max_decrease", bound.max_decrease)) if limit is not None]
        for rule, limit in rules:
            statistic: Literal["increase", "decrease"] = "increase" if rule == "max_increase" else "decrease"
            if now is None:
                found.append(Regression(metric, statistic, math.nan, limit, before, None, MISSING))
                break
            # The gate's own check: a NaN or infinite value fails the rule with the same `value_nan` naming,
            # where a bare `now - before > limit` would be False for NaN and report nothing.
            failure = check(metric, rule, limit, now, before, optional=False)
            if failure is None:
                continue
            change = now - before if statistic == "increase" else before - now
            found.append(Regression(metric, statistic, change, limit, before, now, failure.problem))
            break
    return found
