"""Domain events -> catalog payloads, in one table, and the unit-of-work step every writer ends with:
emit what the aggregate recorded and save it, in the caller's transaction (so the outbox rows commit with
the state change, or neither does)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from services.registry.adapters import (
    api_key_repository,
    erasure_repository,
    incident_repository,
    model_repository,
    repository,
)
from services.registry.domain import events
from services.registry.domain.api_keys import ApiKey
from services.registry.domain.deployments import ModelAlias
from services.registry.domain.erasure import Erasure
from services.registry.domain.incidents import Incident
from services.registry.domain.job import Job
from services.registry.domain.model_version import ModelVersion
from services.registry.domain.principals import Principal
from shared.bus.context import EmitScope, HandlerContext
from shared.evaluation.options import CanarySpec, EvaluationOptions
from shared.events import erasure as wire_erasure
from shared.events import evaluation as wire_evaluation
from shared.events import incidents as wire_incidents
from shared.events import inference as wire_inference
from shared.events import model_versions as wire_models
from shared.events import payloads as wire
from shared.events.decommissioning import DecommissioningPlan

Translation = Callable[[Any], tuple[str, BaseModel]]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


TO_WIRE: dict[type[events.DomainEvent], Translation] = {
    events.StateChanged: lambda e: (
        "job.state_changed",
        wire.JobStateChanged(job_id=e.subject, from_state=e.from_state, to_state=e.to_state, reason=e.reason),
    ),
    events.JobAccepted: lambda e: (
        "job.accepted",
        wire.JobAccepted(
            job_id=e.subject,
            risk_tier=e.risk_tier,
            tier_rule=e.tier_rule,
            licence_id=e.licence_id,
            licence_decision=e.licence_decision,
            advice=e.advice,
        ),
    ),
    events.JobRejected: lambda e: (
        "job.rejected",
        wire.JobRejected(job_id=e.subject, stage=e.stage, reasons=e.reasons),
    ),
    events.ScanRequested: lambda e: (
        "dataset.scan.requested",
        wire.DatasetScanRequested(
            job_id=e.subject,
            dataset=wire.DatasetSpec.model_validate(e.dataset),
            canaries=None if e.canaries is None else CanarySpec.model_validate(e.canaries),
        ),
    ),
    events.ApprovalRequested: lambda e: (
        "approval.requested",
        wire.ApprovalRequested(
            job_id=e.subject,
            required_approvals=e.required_approvals,
            risk_tier=e.risk_tier,
            advice=e.advice,
            scan_summary=e.scan_summary,
            expires_at=e.expires_at.isoformat(),
        ),
    ),
    events.ApprovalGranted: lambda e: (
        "approval.granted",
        wire.ApprovalGranted(
            job_id=e.subject,
            approver=e.actor,
            comment=e.comment,
            override=e.override,
            approvals_so_far=e.approvals_so_far,
        ),
    ),
    events.ApprovalRejected: lambda e: (
        "approval.rejected",
        wire.ApprovalRejected(job_id=e.subject, approver=e.actor, reason=e.reason),
    ),
    events.ApprovalExpired: lambda e: (
        "approval.expired",
        wire.ApprovalExpired(job_id=e.subject, requested_at=e.requested_at.isoformat()),
    ),
    events.TrainingRequested: lambda e: (
        "training.requested",
        wire.TrainingRequested(
            job_id=e.subject,
            base_model=e.base_model,
            method=wire.MethodSpec.model_validate(e.method),
            hyperparameters=e.hyperparameters,
            dataset=wire.ArtifactRef.model_validate(e.dataset),
            fingerprint=e.fingerprint,
            scan_verdict=e.scan_verdict,
            seed=e.seed,
            approvers=e.approvers,
            risk_tier=e.risk_tier,
            evaluation=EvaluationOptions.model_validate(e.evaluation),
            reward_model=wire.ArtifactRef.model_validate(e.reward_model) if e.reward_model else None,
            policy=wire.ArtifactRef.model_validate(e.policy) if e.policy else None,
        ),
    ),
    events.TrainingCancelRequested: lambda e: (
        "training.cancel.requested",
        wire.TrainingCancelRequested(job_id=e.subject, reason=e.reason),
    ),
    events.EvaluationRequested: lambda e: (
        "evaluation.requested",
        wire_evaluation.EvaluationRequested(
            job_id=e.subject, requested_by=e.requested_by, suites=e.suites, reason=e.reason
        ),
    ),
    events.ModelRegistered: lambda e: (
        "model.registered",
        wire_models.ModelRegistered(
            version_id=e.subject,
            model_name=e.model_name,
            version=e.number,
            job_id=e.job_id,
            evaluation_id=e.evaluation_id,
            base_model=e.base_model,
            base_model_sha256=e.base_model_sha256,
            artifact=wire.ArtifactRef.model_validate(e.artifact),
            aibom=wire.ArtifactRef.model_validate(e.aibom),
            dataset_fingerprints=e.dataset_fingerprints,
            gate_passed=e.gate_passed,
            report=wire.ArtifactRef.model_validate(e.report),
            risk_tier=e.risk_tier,
            required_approvals=e.required_approvals,
            decommissioning=DecommissioningPlan.model_validate(e.decommissioning),
            review_by=e.review_by.isoformat(),
        ),
    ),
    events.ModelStateChanged: lambda e: (
        "model.state_changed",
        wire_models.ModelStateChanged(
            version_id=e.subject, from_state=e.from_state, to_state=e.to_state, reason=e.reason
        ),
    ),
    events.ModelApprovalGranted: lambda e: (
        "model.approval.granted",
        wire_models.ModelApprovalGranted(
            version_id=e.subject,
            approver=e.actor,
            comment=e.comment,
            approvals_so_far=e.approvals_so_far,
            required_approvals=e.required_approvals,
        ),
    ),
    events.ModelDeployed: lambda e: (
        "model.deployed",
        wire_models.ModelDeployed(
            version_id=e.subject,
            alias=e.alias,
            tenants=e.tenants,
            base_model=e.base_model,
            adapter=e.adapter,
            artifact=wire.ArtifactRef.model_validate(e.artifact),
            replaces=e.replaces,
            rollback=e.rollback,
            watermark=e.watermark,
        ),
    ),
    events.ModelRetired: lambda e: (
        "model.retired",
        wire_models.ModelRetired(version_id=e.subject, reason=e.reason, alias=e.alias),
    ),
    events.IncidentOpened: lambda e: (
        "incident.opened",
        wire_incidents.IncidentOpened(
            incident_id=e.subject, title=e.title, severity=e.severity, affected_versions=e.affected_versions,
            audit_entries=e.audit_entries, aware_at=_iso(e.aware_at), report_deadline=_iso(e.report_deadline),
            opened_by=e.actor,
        ),
    ),
    events.IncidentUpdated: lambda e: (
        "incident.updated",
        wire_incidents.IncidentUpdated(
            incident_id=e.subject, note=e.note, severity=e.severity, added_versions=e.added_versions,
            added_audit_entries=e.added_audit_entries, report_deadline=_iso(e.report_deadline),
            reported_at=_iso(e.reported_at), report_reference=e.report_reference, updated_by=e.actor,
        ),
    ),
    events.IncidentClosed: lambda e: (
        "incident.closed",
        wire_incidents.IncidentClosed(
            incident_id=e.subject, resolution=e.resolution, reported_at=_iso(e.reported_at), closed_by=e.actor
        ),
    ),
    events.PrincipalCreated: lambda e: (
        "principal.created",
        wire.PrincipalCreated(
            name=e.subject,
            roles=e.roles,
            token_sha256=e.token_sha256,
            public_key=e.public_key,
            key_id=e.key_id,
            created_by=e.actor,
        ),
    ),
    events.PrincipalRotated: lambda e: (
        "principal.rotated",
        wire.PrincipalRotated(
            name=e.subject, token_sha256=e.token_sha256, public_key=e.public_key, key_id=e.key_id, rotated_by=e.actor
        ),
    ),
    events.PrincipalRevoked: lambda e: (
        "principal.revoked",
        wire.PrincipalRevoked(name=e.subject, revoked_by=e.actor, reason=e.reason),
    ),
    # Hashes only: the secret is shown once to whoever created or rotated the key, and never leaves the API.
    events.ApiKeyCreated: lambda e: (
        "apikey.created",
        wire_inference.ApiKeyCreated(
            key_id=e.subject,
            name=e.name,
            tenant=e.tenant,
            models=e.models,
            limits=wire_inference.ApiKeyLimits(
                requests_per_minute=e.requests_per_minute, tokens_per_day=e.tokens_per_day
            ),
            key_sha256=e.key_sha256,
            created_by=e.actor,
        ),
    ),
    events.ApiKeyRotated: lambda e: (
        "apikey.rotated",
        wire_inference.ApiKeyRotated(key_id=e.subject, key_sha256=e.key_sha256, rotated_by=e.actor),
    ),
    events.ApiKeyRevoked: lambda e: (
        "apikey.revoked",
        wire_inference.ApiKeyRevoked(key_id=e.subject, reason=e.reason, revoked_by=e.actor),
    ),
    # The subject only as its keyed hash; the records only as their hashes (docs/erasure.md).
    events.ErasureRequested: lambda e: (
        "dataset.erasure.requested",
        wire_erasure.ErasureRequested(
            erasure_id=e.subject, subject_key=e.subject_key, reason=e.reason, requested_by=e.actor
        ),
    ),
    events.ErasureProgressed: lambda e: (
        "dataset.erasure.progressed",
        wire_erasure.ErasureProgressed(
            erasure_id=e.subject,
            step=e.step,
            status=e.status,
            datasets=[wire_erasure.AffectedDataset.model_validate(d) for d in e.datasets],
            versions=e.versions,
            detail=e.detail,
            due=None if e.due is None else e.due.isoformat(),
        ),
    ),
    events.ErasureCompleted: lambda e: (
        "dataset.erasure.completed",
        wire_erasure.ErasureCompleted(
            erasure_id=e.subject,
            affected_datasets=e.affected_datasets,
            affected_versions=e.affected_versions,
            replacements=e.replacements,
            certificate_sha256=e.certificate_sha256,
        ),
    ),
}


def to_wire(event: events.DomainEvent) -> tuple[str, BaseModel]:
    try:
        translate = TO_WIRE[type(event)]
    except KeyError:
        raise TypeError(f"no wire translation for domain event {type(event).__name__}") from None
    return translate(event)


def emit(scope: EmitScope, recorded: list[events.DomainEvent]) -> None:
    """Queue each recorded event on the scope's outbox, under the event id the aggregate gave it."""
    for event in recorded:
        event_type, payload = to_wire(event)
        envelope = scope.make(event_type, payload, subject=event.subject, actor=event.actor)
        scope.outgoing.append(envelope.model_copy(update={"event_id": event.event_id}))


def commit_job(ctx: HandlerContext, job: Job) -> None:
    """Queue the job's recorded events and save it; new history names the handled event as its cause."""
    emit(ctx, job.pull_events())
    repository.save_job(ctx.db, job, cause_event_id=ctx.causation_id)


def commit_principal(ctx: HandlerContext, principal: Principal, *, new: bool = False) -> None:
    emit(ctx, principal.pull_events())
    if new:
        repository.add_principal(ctx.db, principal)
    else:
        repository.save_principal(ctx.db, principal)


def commit_version(ctx: HandlerContext, version: ModelVersion) -> None:
    emit(ctx, version.pull_events())
    model_repository.save_version(ctx.db, version, cause_event_id=ctx.causation_id)


def commit_alias(ctx: HandlerContext, alias: ModelAlias) -> None:
    model_repository.save_alias(ctx.db, alias)


def commit_api_key(ctx: HandlerContext, key: ApiKey, *, new: bool = False) -> None:
    emit(ctx, key.pull_events())
    if new:
        api_key_repository.add_key(ctx.db, key)
    else:
        api_key_repository.save_key(ctx.db, key)


def commit_erasure(ctx: HandlerContext, erasure: Erasure) -> None:
    emit(ctx, erasure.pull_events())
    erasure_repository.save_erasure(ctx.db, erasure)


def commit_incident(ctx: HandlerContext, incident: Incident) -> None:
    emit(ctx, incident.pull_events())
    incident_repository.save_incident(ctx.db, incident)
