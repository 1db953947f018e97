"""Registry tables (SQLAlchemy 2.x ORM, SQLite and PostgreSQL). Names are prefixed `registry_`.

Jobs carry a version column for optimistic concurrency: two writers that read the same version cannot
both move a job (the second UPDATE matches no row and SQLAlchemy raises StaleDataError); a change to a
job's evaluations updates the job row too, so the same guard covers them. Later issues add columns/tables
(erasure) next to these."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out: SQLite drops the zone, so store naive UTC and re-attach it."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UTCDateTime: naive datetimes are refused; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData()


class JobRow(Base):
    __tablename__ = "registry_jobs"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    requester: Mapped[str] = mapped_column(String(200), index=True)
    use_case_name: Mapped[str] = mapped_column(String(200))
    base_model: Mapped[str] = mapped_column(String(500))
    risk_tier: Mapped[str] = mapped_column(String(16))
    tier_rule: Mapped[str] = mapped_column(String(200))
    tier_reason: Mapped[str] = mapped_column(Text, default="")
    licence_id: Mapped[str | None] = mapped_column(String(100))
    licence_decision: Mapped[str] = mapped_column(Text, default="")
    advice: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    required_approvals: Mapped[int] = mapped_column(Integer, default=1)
    rejection_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    scan_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    training_dataset: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    data_fingerprint: Mapped[str | None] = mapped_column(String(64))
    scan_verdict: Mapped[str | None] = mapped_column(String(16))
    training_result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # W3C traceparent of the job's trace: approvals and timers continue it, so a job stays one trace.
    traceparent: Mapped[str | None] = mapped_column(String(64))
    approval_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approval_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    transitions: Mapped[list[TransitionRow]] = relationship(
        back_populates="job", order_by="TransitionRow.id", cascade="all, delete-orphan"
    )
    approvals: Mapped[list[ApprovalRow]] = relationship(
        back_populates="job", order_by="ApprovalRow.id", cascade="all, delete-orphan"
    )
    evaluation_requests: Mapped[list[EvaluationRequestRow]] = relationship(
        back_populates="job", order_by="EvaluationRequestRow.id", cascade="all, delete-orphan"
    )
    evaluations: Mapped[list[EvaluationRow]] = relationship(
        back_populates="job", order_by="EvaluationRow.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads this class attribute


class TransitionRow(Base):
    __tablename__ = "registry_job_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("registry_jobs.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    event_id: Mapped[str] = mapped_column(String(64), comment="The job.state_changed event recording it.")
    cause_event_id: Mapped[str | None] = mapped_column(String(64), comment="The event that caused it, if any.")

    job: Mapped[JobRow] = relationship(back_populates="transitions")


class ApprovalRow(Base):
    __tablename__ = "registry_approvals"
    __table_args__ = (UniqueConstraint("job_id", "approver", name="registry_approvals_one_per_approver"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("registry_jobs.id"), index=True)
    approver: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    job: Mapped[JobRow] = relationship(back_populates="approvals")


class EvaluationRequestRow(Base):
    """A re-run asked for through the API; the evaluator's events name `request_id` as their cause."""

    __tablename__ = "registry_evaluation_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("registry_jobs.id"), index=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True, comment="The evaluation.requested event.")
    requested_by: Mapped[str] = mapped_column(String(200))
    suites: Mapped[list[str] | None] = mapped_column(JSON, comment="None: every configured suite.")
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    job: Mapped[JobRow] = relationship(back_populates="evaluation_requests")


class EvaluationRow(Base):
    """One evaluation run of a job, as the evaluator reported it (rows are in the order first heard of)."""

    __tablename__ = "registry_evaluations"
    __table_args__ = (UniqueConstraint("job_id", "evaluation_id", name="registry_evaluations_one_per_run"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("registry_jobs.id"), index=True)
    evaluation_id: Mapped[str] = mapped_column(String(80), index=True)
    status: Mapped[str] = mapped_column(String(16), comment="running | passed | gate_failed | error")
    request_id: Mapped[str | None] = mapped_column(String(64))
    requested_by: Mapped[str | None] = mapped_column(String(200), comment="None: the run that follows training.")
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    suites_requested: Mapped[list[str]] = mapped_column(JSON, default=list)
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JSON, comment="The gate's verdict, as reported.")
    failing_metrics: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    suites: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list, comment="Per-suite metrics, both models.")
    report_uri: Mapped[str | None] = mapped_column(String(500))
    report_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    report_html_uri: Mapped[str | None] = mapped_column(String(500))
    report_html_sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    job: Mapped[JobRow] = relationship(back_populates="evaluations")


class PrincipalRow(Base):
    __tablename__ = "registry_principals"
    __table_args__ = (Index("registry_principals_token", "token_sha256", unique=True),)

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    roles: Mapped[list[str]] = mapped_column(JSON)
    token_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    keys: Mapped[list[PrincipalKeyRow]] = relationship(
        back_populates="principal", order_by="PrincipalKeyRow.id", cascade="all, delete-orphan", lazy="selectin"
    )


class PrincipalKeyRow(Base):
    """Every event-signing public key a principal ever had; retired keys stay to verify older events."""

    __tablename__ = "registry_principal_keys"
    __table_args__ = (UniqueConstraint("principal_name", "key_id", name="registry_principal_keys_one_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    principal_name: Mapped[str] = mapped_column(ForeignKey("registry_principals.name"), index=True)
    key_id: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[str] = mapped_column(String(64), comment="Ed25519 public key, hex.")
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    principal: Mapped[PrincipalRow] = relationship(back_populates="keys")


class ConsoleLogoutRow(Base):
    """A console session ended by logging out before its cookie expired: a copy of the cookie kept elsewhere
    must not work on (console/sessions.py keeps nothing else server-side). Kept until the cookie's own
    expiry, then purged."""

    __tablename__ = "registry_console_logouts"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(Integer, index=True, comment="The cookie's expiry, Unix seconds.")


class ApiKeyRow(Base):
    """A gateway API key (domain/api_keys.py): the SHA-256 of its current secret, never the secret."""

    __tablename__ = "registry_api_keys"
    __table_args__ = (Index("registry_api_keys_secret", "key_sha256", unique=True),)

    key_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    models: Mapped[list[str]] = mapped_column(JSON)
    requests_per_minute: Mapped[int] = mapped_column(Integer)
    tokens_per_day: Mapped[int] = mapped_column(BigInteger, comment="Up to 10^10: over a 32-bit integer.")
    key_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    revoke_reason: Mapped[str | None] = mapped_column(Text)


class BootstrapSecretRow(Base):
    """The one-time secret that lets the local operator create the first admin. Only its hash is here; the
    secret itself is in a 0600 file under TUNEGATE_HOME, readable by whoever runs the registry."""

    __tablename__ = "registry_bootstrap_secret"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consumed_by: Mapped[str | None] = mapped_column(String(200))


class ModelVersionRow(Base):
    """One model version (domain/model_version.py). Its lifecycle history and approvals are JSON lists that
    only grow; the version column guards concurrent moves as for jobs."""

    __tablename__ = "registry_model_versions"
    __table_args__ = (UniqueConstraint("model_name", "number", name="registry_model_versions_one_number"),)

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    job_id: Mapped[str] = mapped_column(String(80), index=True)
    evaluation_id: Mapped[str] = mapped_column(String(80), unique=True)
    requester: Mapped[str] = mapped_column(String(200))
    risk_tier: Mapped[str] = mapped_column(String(16))
    required_approvals: Mapped[int] = mapped_column(Integer)
    gate_passed: Mapped[bool] = mapped_column(Boolean)
    base_model: Mapped[str] = mapped_column(String(500))
    base_model_sha256: Mapped[str | None] = mapped_column(String(64))
    adapter: Mapped[str] = mapped_column(String(16))
    artifact: Mapped[dict[str, Any]] = mapped_column(JSON)
    aibom: Mapped[dict[str, Any]] = mapped_column(JSON)
    aibom_sha256: Mapped[str] = mapped_column(String(64), index=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    verdict: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset_fingerprints: Mapped[list[str]] = mapped_column(JSON, default=list)
    decommissioning: Mapped[dict[str, Any]] = mapped_column(JSON)
    review_by: Mapped[date] = mapped_column(Date, index=True)
    alias: Mapped[str | None] = mapped_column(String(64), index=True)
    tenants: Mapped[list[str]] = mapped_column(JSON, default=list)
    retired_reason: Mapped[str | None] = mapped_column(Text)
    transitions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    approvals: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads this class attribute


class ModelAliasRow(Base):
    """An alias gateway clients call and the versions it served (domain/deployments.py)."""

    __tablename__ = "registry_model_aliases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[str | None] = mapped_column(String(80))
    tenants: Mapped[list[str]] = mapped_column(JSON, default=list)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads this class attribute


class ErasureRow(Base):
    """A data subject's erasure (domain/erasure.py): the subject only as a keyed hash; lineage and steps as JSON."""

    __tablename__ = "registry_erasures"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    subject_key: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(64), index=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads this class attribute


class IncidentRow(Base):
    """An incident (domain/incidents.py); its history is a JSON list that only grows."""

    __tablename__ = "registry_incidents"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    affected_versions: Mapped[list[str]] = mapped_column(JSON, default=list)
    audit_entries: Mapped[list[str]] = mapped_column(JSON, default=list)
    aware_at: Mapped[datetime] = mapped_column(UTCDateTime)
    opened_by: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    report_reference: Mapped[str] = mapped_column(String(200), default="")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str] = mapped_column(Text, default="")
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads this class attribute


METADATA = Base.metadata
