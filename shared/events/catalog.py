"""The event catalog: every type tunegate's services exchange, its stream, version and payload model.

Adding an event type means adding one line here; publishing or receiving a type that is not listed is an
error (it goes to the dead-letter stream on receipt)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.events import erasure as r
from shared.events import evaluation as e
from shared.events import incidents as n
from shared.events import inference as i
from shared.events import model_versions as m
from shared.events import monitoring as mon
from shared.events import payloads as p
from shared.events.streams import Stream
from shared.validation import describe_validation_error


@dataclass(frozen=True, slots=True)
class EventSpec:
    type: str
    stream: Stream
    model: type[p.Payload]
    version: int = 1


_SPECS: tuple[EventSpec, ...] = (
    EventSpec("job.requested", Stream.JOBS, p.JobRequested),
    EventSpec("job.accepted", Stream.JOBS, p.JobAccepted),
    EventSpec("job.rejected", Stream.JOBS, p.JobRejected),
    EventSpec("job.state_changed", Stream.JOBS, p.JobStateChanged),
    EventSpec("approval.requested", Stream.JOBS, p.ApprovalRequested),
    EventSpec("approval.granted", Stream.JOBS, p.ApprovalGranted),
    EventSpec("approval.rejected", Stream.JOBS, p.ApprovalRejected),
    EventSpec("approval.expired", Stream.JOBS, p.ApprovalExpired),
    EventSpec("dataset.scan.requested", Stream.DATASETS, p.DatasetScanRequested),
    EventSpec("dataset.scanned", Stream.DATASETS, p.DatasetScanned),
    EventSpec("dataset.scan.failed", Stream.DATASETS, p.DatasetScanFailed),
    EventSpec("dataset.erasure.requested", Stream.DATASETS, r.ErasureRequested),
    EventSpec("dataset.erasure.progressed", Stream.DATASETS, r.ErasureProgressed),
    EventSpec("dataset.erasure.shredded", Stream.DATASETS, r.ErasureShredded),
    EventSpec("dataset.erasure.completed", Stream.DATASETS, r.ErasureCompleted),
    EventSpec("training.requested", Stream.TRAINING, p.TrainingRequested),
    EventSpec("training.started", Stream.TRAINING, p.TrainingStarted),
    EventSpec("training.progress", Stream.TRAINING, p.TrainingProgress),
    EventSpec("training.checkpointed", Stream.TRAINING, p.TrainingCheckpointed),
    EventSpec("training.completed", Stream.TRAINING, p.TrainingCompleted),
    EventSpec("training.failed", Stream.TRAINING, p.TrainingFailed),
    EventSpec("training.cancel.requested", Stream.TRAINING, p.TrainingCancelRequested),
    EventSpec("training.cancelled", Stream.TRAINING, p.TrainingCancelled),
    EventSpec("evaluation.requested", Stream.EVALUATION, e.EvaluationRequested),
    EventSpec("evaluation.started", Stream.EVALUATION, e.EvaluationStarted),
    EventSpec("evaluation.completed", Stream.EVALUATION, e.EvaluationCompleted),
    EventSpec("evaluation.failed", Stream.EVALUATION, e.EvaluationFailed),
    EventSpec("evaluation.scheduled", Stream.EVALUATION, mon.EvaluationScheduled),
    EventSpec("model.registered", Stream.MODELS, m.ModelRegistered),
    EventSpec("model.state_changed", Stream.MODELS, m.ModelStateChanged),
    EventSpec("model.approval.granted", Stream.MODELS, m.ModelApprovalGranted),
    EventSpec("model.deployed", Stream.MODELS, m.ModelDeployed),
    EventSpec("model.retired", Stream.MODELS, m.ModelRetired),
    EventSpec("model.drift.detected", Stream.MODELS, mon.ModelDriftDetected),
    EventSpec("model.memorisation.detected", Stream.MODELS, mon.ModelMemorisationDetected),
    # Incidents involving model versions (EU AI Act Art. 73), recorded by the registry.
    EventSpec("incident.opened", Stream.MODELS, n.IncidentOpened),
    EventSpec("incident.updated", Stream.MODELS, n.IncidentUpdated),
    EventSpec("incident.closed", Stream.MODELS, n.IncidentClosed),
    EventSpec("inference.completed", Stream.INFERENCE, i.InferenceCompleted),
    EventSpec("inference.blocked", Stream.INFERENCE, i.InferenceBlocked),
    # On the jobs stream: a consumer sees a principal's key before the first job that principal signs.
    EventSpec("principal.created", Stream.JOBS, p.PrincipalCreated),
    EventSpec("principal.rotated", Stream.JOBS, p.PrincipalRotated),
    EventSpec("principal.revoked", Stream.JOBS, p.PrincipalRevoked),
    # Gateway API keys: issued by the registry, followed by the gateway.
    EventSpec("apikey.created", Stream.JOBS, i.ApiKeyCreated),
    EventSpec("apikey.rotated", Stream.JOBS, i.ApiKeyRotated),
    EventSpec("apikey.revoked", Stream.JOBS, i.ApiKeyRevoked),
    EventSpec("bus.event.rejected", Stream.BUS, p.BusEventRejected),
    EventSpec("bus.event.dead_lettered", Stream.BUS, p.BusEventDeadLettered),
)

CATALOG: dict[str, EventSpec] = {spec.type: spec for spec in _SPECS}


class UnknownEventType(ValueError):
    pass


def spec_for(event_type: str) -> EventSpec:
    try:
        return CATALOG[event_type]
    except KeyError:
        raise UnknownEventType(f"type: unknown event type {event_type!r} (not in the event catalog)") from None


_BY_MODEL: dict[type[p.Payload], EventSpec] = {spec.model: spec for spec in _SPECS}


def spec_for_model(model: type[p.Payload]) -> EventSpec:
    """The one event type whose payload is this model (each payload class belongs to exactly one type)."""
    try:
        return _BY_MODEL[model]
    except KeyError:
        raise UnknownEventType(f"{model.__name__} is not the payload of any catalog event type") from None


def typed_payload(event_type: str, version: int, payload: dict[str, Any]) -> p.Payload:
    """Validate a payload into its model; raise ValueError naming the failing fields."""
    spec = spec_for(event_type)
    if version != spec.version:
        raise ValueError(f"version: {event_type} v{version} is not supported (expected v{spec.version})")
    try:
        return spec.model.model_validate(payload)
    except ValidationError as exc:
        details = describe_validation_error(exc, root="payload", prefix="payload.")
        raise ValueError(f"invalid {event_type} payload: {details}") from None

