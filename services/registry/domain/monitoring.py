"""What the registry makes of recurring monitoring's reports (model.drift.detected, model.memorisation.detected,
published by the evaluator): a flag on the version, and per policy (`monitoring:` in the registry policy) its
retirement. Flags only accumulate: they are the version's monitoring record. Pure: no I/O.

Incidents (EU AI Act Art. 73) are opened elsewhere; `Flag` carries what an incident needs (the version, the
kind, the findings, the event that reported them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from services.registry.domain.model_states import ModelState
from services.registry.domain.model_version import ModelVersion
from services.registry.domain.policy import MonitoringPolicy

FlagKind = Literal["drift", "memorisation"]
MAX_SUMMARY_CHARS = 2_000


@dataclass(frozen=True)
class Flag:
    version_id: str
    kind: FlagKind
    source: str
    """`scheduled_evaluation` or `production`."""
    findings: list[dict[str, Any]]
    event_id: str
    evaluation_id: str | None
    action: Literal["flag", "retire"]
    at: datetime

    @property
    def summary(self) -> str:
        return summarise(self.findings)


def summarise(findings: list[dict[str, Any]]) -> str:
    """`metric statistic value > threshold` per finding, e.g. `block_rate chi_square 41.2 (p 1e-09 < 0.01)`."""
    parts = []
    for f in findings:
        if f.get("problem") is not None:  # no number to compare: the metric itself was not a finite number
            now = "missing" if f["problem"] == "value_missing" else f["problem"].removeprefix("value_")
            parts.append(f"{f['metric']} not a finite number ({now}; max {f['statistic']} {f['threshold']:g})")
        elif f.get("p_value") is not None:
            parts.append(f"{f['metric']} {f['statistic']} {f['value']:.3g} (p {f['p_value']:.2g} < {f['threshold']:g})")
        else:
            parts.append(f"{f['metric']} {f['statistic']} {f['value']:.3g} > {f['threshold']:g}")
    return "; ".join(parts)[:MAX_SUMMARY_CHARS]


def action_for(policy: MonitoringPolicy, kind: FlagKind) -> Literal["flag", "retire"]:
    return policy.on_memorisation if kind == "memorisation" else policy.on_drift


def incident_severity(policy: MonitoringPolicy, kind: FlagKind) -> str | None:
    """The severity of the incident a report opens (domain/incidents.py), or None for no incident."""
    return policy.memorisation_incident if kind == "memorisation" else policy.drift_incident


def apply(version: ModelVersion, flag: Flag, *, by: str, now: datetime) -> str | None:
    """Retire the version when the policy says so and it is not retired yet; returns the alias it served."""
    if flag.action != "retire" or version.state == ModelState.RETIRED:
        return None
    reason = f"monitoring: {flag.kind} detected ({flag.source}, event {flag.event_id}): {flag.summary}"
    return version.retire(by=by, reason=reason, now=now)
