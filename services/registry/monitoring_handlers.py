"""The registry's side of recurring monitoring: model.drift.detected and model.memorisation.detected (from
the evaluator) flag the version and, where the policy's `monitoring:` section says `retire`, retire it in the
same transaction (model.retired: the gateway stops serving it; its alias serves nothing until the next deploy).

Each report also opens an incident (EU AI Act Art. 73) when the policy gives its kind a severity
(`monitoring.drift_incident` / `memorisation_incident`), linked to the reporting event."""

from __future__ import annotations

import logging

from services.registry.adapters import model_repository, outbox
from services.registry.adapters.monitoring_flags import add_flag
from services.registry.domain import deployments, monitoring
from services.registry.domain.governance import Governance
from services.registry.domain.incidents import open_incident
from services.registry.domain.monitoring import Flag, FlagKind
from services.registry.domain.states import SYSTEM_ACTOR
from shared.bus.context import HandlerContext
from shared.bus.definition import TypedHandler
from shared.events.monitoring import ModelDriftDetected, ModelMemorisationDetected
from shared.events.payloads import Payload

log = logging.getLogger("tunegate.registry.monitoring")


def record_report(ctx: HandlerContext, governance: Governance, kind: FlagKind,
                  report: ModelDriftDetected | ModelMemorisationDetected, source: str) -> Flag | None:
    version = model_repository.load_version(ctx.db, report.version_id)
    if version is None:
        log.warning("%s for unknown model version %s (event %s): skipped", ctx.event.type, report.version_id,
                    ctx.event.event_id)
        return None
    now = governance.now()
    flag = Flag(version_id=version.id, kind=kind, source=source,
                findings=[f.model_dump(mode="json") for f in report.findings], event_id=ctx.event.event_id,
                evaluation_id=report.evaluation_id, action=monitoring.action_for(governance.policy.monitoring, kind),
                at=now)
    add_flag(ctx.db, flag)
    before = version.state
    served = monitoring.apply(version, flag, by=SYSTEM_ACTOR, now=now)
    if version.state != before:
        outbox.commit_version(ctx, version)
    if served is not None:
        alias = model_repository.require_alias(ctx.db, served)
        deployments.release(alias, version, by=SYSTEM_ACTOR, now=now)
        outbox.commit_alias(ctx, alias)
    log.warning("model version %s flagged for %s (%s): %s; policy: %s", version.id, kind, source, flag.summary,
                flag.action)
    severity = monitoring.incident_severity(governance.policy.monitoring, kind)
    if severity is not None:
        incident = open_incident(
            title=f"{kind} detected on {version.id} ({source})", severity=severity,
            affected_versions=[version.id], known_versions={version.id}, by=SYSTEM_ACTOR, now=now,
            description=f"{flag.summary}; policy action: {flag.action}", audit_entries=[ctx.event.event_id],
        )
        outbox.commit_incident(ctx, incident)
        log.warning("incident %s opened for %s (severity %s)", incident.id, version.id, severity)
    return flag


def build_monitoring_handlers(governance: Governance) -> dict[type[Payload], TypedHandler]:
    async def on_model_drift_detected(data: ModelDriftDetected, ctx: HandlerContext) -> None:
        record_report(ctx, governance, "drift", data, data.source)

    async def on_model_memorisation_detected(data: ModelMemorisationDetected, ctx: HandlerContext) -> None:
        record_report(ctx, governance, "memorisation", data, "scheduled_evaluation")

    return {
        ModelDriftDetected: on_model_drift_detected,
        ModelMemorisationDetected: on_model_memorisation_detected,
    }
