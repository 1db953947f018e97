"""What happened, in the registry's own words: plain records the aggregates append as they change.

They carry no wire format; adapters/outbox.py translates each class into its catalog payload in one table.
Every record has an event id of its own, so a stored transition can name the event that announced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shared.ids import uuid7


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    subject: str
    actor: str
    event_id: str = field(default_factory=uuid7)


# ---------------------------------------------------------------- jobs


@dataclass(frozen=True, kw_only=True)
class StateChanged(DomainEvent):
    from_state: str | None
    to_state: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class JobAccepted(DomainEvent):
    risk_tier: str
    tier_rule: str
    licence_id: str | None
    licence_decision: str
    advice: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class JobRejected(DomainEvent):
    stage: str
    reasons: list[str]


@dataclass(frozen=True, kw_only=True)
class ScanRequested(DomainEvent):
    dataset: dict[str, Any]
    canaries: dict[str, Any] | None
    """The job's canary spec (shape and count, never values): the scanner plants them before scanning."""


@dataclass(frozen=True, kw_only=True)
class ApprovalRequested(DomainEvent):
    required_approvals: int
    risk_tier: str
    advice: dict[str, Any]
    scan_summary: dict[str, Any]
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class ApprovalGranted(DomainEvent):
    comment: str
    override: bool
    approvals_so_far: int


@dataclass(frozen=True, kw_only=True)
class ApprovalRejected(DomainEvent):
    reason: str


@dataclass(frozen=True, kw_only=True)
class ApprovalExpired(DomainEvent):
    requested_at: datetime


@dataclass(frozen=True, kw_only=True)
class TrainingRequested(DomainEvent):
    base_model: str
    method: dict[str, Any]
    hyperparameters: dict[str, Any]
    dataset: dict[str, Any]
    fingerprint: str
    scan_verdict: str
    seed: int
    approvers: list[str]
    risk_tier: str
    evaluation: dict[str, Any]
    reward_model: dict[str, Any] | None = None  # rlhf: the approved reward-model version's artefact
    policy: dict[str, Any] | None = None  # rlhf: the approved SFT version's artefact the policy starts from


@dataclass(frozen=True, kw_only=True)
class TrainingCancelRequested(DomainEvent):
    reason: str


@dataclass(frozen=True, kw_only=True)
class EvaluationRequested(DomainEvent):
    requested_by: str
    suites: list[str] | None
    reason: str


# ---------------------------------------------------------------- model versions


@dataclass(frozen=True, kw_only=True)
class ModelRegistered(DomainEvent):
    model_name: str
    number: int
    job_id: str
    evaluation_id: str
    base_model: str
    base_model_sha256: str | None
    artifact: dict[str, Any]
    aibom: dict[str, Any]
    report: dict[str, Any]
    dataset_fingerprints: list[str]
    gate_passed: bool
    risk_tier: str
    required_approvals: int
    decommissioning: dict[str, Any]
    review_by: date


@dataclass(frozen=True, kw_only=True)
class ModelStateChanged(DomainEvent):
    from_state: str | None
    to_state: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class ModelApprovalGranted(DomainEvent):
    comment: str
    approvals_so_far: int
    required_approvals: int


@dataclass(frozen=True, kw_only=True)
class ModelDeployed(DomainEvent):
    alias: str
    tenants: list[str]
    base_model: str
    adapter: str
    artifact: dict[str, Any]
    replaces: str | None
    rollback: bool
    watermark: bool = False


@dataclass(frozen=True, kw_only=True)
class ModelRetired(DomainEvent):
    reason: str
    alias: str | None


# ---------------------------------------------------------------- incidents (EU AI Act Art. 73)


@dataclass(frozen=True, kw_only=True)
class IncidentOpened(DomainEvent):
    title: str
    severity: str
    affected_versions: list[str]
    audit_entries: list[str]
    aware_at: datetime
    report_deadline: datetime | None


@dataclass(frozen=True, kw_only=True)
class IncidentUpdated(DomainEvent):
    note: str
    severity: str
    added_versions: list[str]
    added_audit_entries: list[str]
    report_deadline: datetime | None
    reported_at: datetime | None
    report_reference: str


@dataclass(frozen=True, kw_only=True)
class IncidentClosed(DomainEvent):
    resolution: str
    reported_at: datetime | None


# ---------------------------------------------------------------- principals


@dataclass(frozen=True, kw_only=True)
class PrincipalCreated(DomainEvent):
    roles: list[str]
    token_sha256: str
    public_key: str | None
    key_id: str | None


@dataclass(frozen=True, kw_only=True)
class PrincipalRotated(DomainEvent):
    token_sha256: str
    public_key: str | None
    key_id: str | None


@dataclass(frozen=True, kw_only=True)
class PrincipalRevoked(DomainEvent):
    reason: str


# ---------------------------------------------------------------- gateway API keys (subject: the key id)


@dataclass(frozen=True, kw_only=True)
class ApiKeyCreated(DomainEvent):
    name: str
    tenant: str
    models: list[str]
    requests_per_minute: int
    tokens_per_day: int
    key_sha256: str


@dataclass(frozen=True, kw_only=True)
class ApiKeyRotated(DomainEvent):
    key_sha256: str


@dataclass(frozen=True, kw_only=True)
class ApiKeyRevoked(DomainEvent):
    reason: str


# ---------------------------------------------------------------- erasure (domain/erasure.py)


@dataclass(frozen=True, kw_only=True)
class ErasureRequested(DomainEvent):
    subject_key: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class ErasureProgressed(DomainEvent):
    step: str
    status: str
    datasets: list[dict[str, Any]] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    detail: str = ""
    due: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ErasureCompleted(DomainEvent):
    affected_datasets: list[str]
    affected_versions: list[str]
    replacements: dict[str, str]
    certificate_sha256: str


@dataclass(kw_only=True, eq=False)
class EventRecorder:
    """Base of aggregates: every change appends its events here, the unit of work takes them once."""

    _pending: list[DomainEvent] = field(default_factory=list, init=False, repr=False)

    def _record(self, event: DomainEvent) -> None:
        self._pending.append(event)

    def pull_events(self) -> list[DomainEvent]:
        events, self._pending = self._pending, []
        return events
