"""Recurring monitoring's thresholds (services/evaluator/config/monitoring.yaml) and the comparison of a
scheduled re-evaluation with the evaluation that registered the version. Pure: metrics in, findings out.

A scheduled re-run evaluates the same artefact, so its metrics move only when what it is measured with
moves: a new suite set (new red-team attacks, new PII probes), a changed base or runtime. Each bound limits
the change against the baseline evaluation: `max_increase` for metrics where higher is worse,
`max_decrease` where higher is better. A metric either evaluation did not measure is not judged."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.evaluator.domain.drift import ProductionThresholds

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


@dataclass(frozen=True)
class Regression:
    metric: str
    statistic: Literal["increase", "decrease"]
    value: float
    threshold: float
    baseline: float
    current: float

    @property
    def memorisation(self) -> bool:
        return self.metric.split(".", 1)[0] == MEMORISATION_SUITE


def flatten(suites: Iterable[Mapping[str, object]]) -> dict[str, float]:
    """`suite.metric` -> value over evaluation.completed's suite summaries (their JSON form); unmeasured
    metrics (null) are left out."""
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
    found = []
    for metric, bound in sorted(bounds.items()):
        if metric not in baseline or metric not in current:
            continue
        before, now = baseline[metric], current[metric]
        if bound.max_increase is not None and now - before > bound.max_increase:
            found.append(Regression(metric, "increase", now - before, bound.max_increase, before, now))
        elif bound.max_decrease is not None and before - now > bound.max_decrease:
            found.append(Regression(metric, "decrease", before - now, bound.max_decrease, before, now))
    return found
