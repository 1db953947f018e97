"""Model versions and aliases: rows <-> aggregates. Callers own the session (and so the transaction)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.registry.adapters.tables import ModelAliasRow, ModelVersionRow
from services.registry.adapters.write_back import versioned_row
from services.registry.domain.approvals import Approval
from services.registry.domain.deployments import AliasMove, ModelAlias
from services.registry.domain.errors import NotFound
from services.registry.domain.history import Transition
from services.registry.domain.model_states import ModelState
from services.registry.domain.model_version import ModelVersion
from services.registry.domain.reward_models import (
    RlhfVersions,
    VersionOnRecord,
    lora_shape,
    policy_version,
    reward_model_version,
)
from shared.events.payloads import JobSpec


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _transition_json(step: Transition, cause_event_id: str | None) -> dict[str, Any]:
    return {
        "from_state": step.from_state,
        "to_state": step.to_state,
        "actor": step.actor,
        "reason": step.reason,
        "at": step.at.isoformat(),
        "event_id": step.event_id,
        "cause_event_id": step.cause_event_id or cause_event_id,
    }


def _to_version(row: ModelVersionRow) -> ModelVersion:
    return ModelVersion(
        id=row.id,
        model_name=row.model_name,
        number=row.number,
        state=ModelState(row.state),
        job_id=row.job_id,
        evaluation_id=row.evaluation_id,
        requester=row.requester,
        risk_tier=row.risk_tier,
        required_approvals=row.required_approvals,
        gate_passed=row.gate_passed,
        base_model=row.base_model,
        base_model_sha256=row.base_model_sha256,
        adapter=row.adapter,
        artifact=dict(row.artifact),
        aibom=dict(row.aibom),
        report=dict(row.report),
        verdict=dict(row.verdict),
        dataset_fingerprints=list(row.dataset_fingerprints),
        decommissioning=dict(row.decommissioning),
        review_by=row.review_by,
        registered_at=row.registered_at,
        updated_at=row.updated_at,
        alias=row.alias,
        tenants=list(row.tenants),
        retired_reason=row.retired_reason,
        transitions=[
            Transition(
                t["from_state"], t["to_state"], t["actor"], t["reason"], _when(t["at"]), t["event_id"],
                t.get("cause_event_id"),
            )
            for t in row.transitions
        ],
        approvals=[
            Approval(a["approver"], a["decision"], a["comment"], a["reason"], a["override"], _when(a["at"]))
            for a in row.approvals
        ],
        version=row.version,
    )


def load_version(session: Session, version_id: str) -> ModelVersion | None:
    row = session.get(ModelVersionRow, version_id)
    return None if row is None else _to_version(row)


def require_version(session: Session, version_id: str) -> ModelVersion:
    found = load_version(session, version_id)
    if found is None:
        raise NotFound(f"model version {version_id} not found")
    return found


def version_for_evaluation(session: Session, evaluation_id: str) -> ModelVersion | None:
    row = session.scalars(select(ModelVersionRow).where(ModelVersionRow.evaluation_id == evaluation_id)).one_or_none()
    return None if row is None else _to_version(row)


def next_number(session: Session, model_name: str) -> int:
    top = session.scalar(select(func.max(ModelVersionRow.number)).where(ModelVersionRow.model_name == model_name))
    return (top or 0) + 1


def list_versions(
    session: Session, *, model_name: str | None = None, state: str | None = None, limit: int = 500
) -> list[ModelVersion]:
    query = select(ModelVersionRow).order_by(ModelVersionRow.registered_at.desc(), ModelVersionRow.id).limit(limit)
    if model_name is not None:
        query = query.where(ModelVersionRow.model_name == model_name)
    if state is not None:
        query = query.where(ModelVersionRow.state == state)
    return [_to_version(row) for row in session.scalars(query)]


def overdue_versions(session: Session, *, today: date) -> list[ModelVersion]:
    query = select(ModelVersionRow).where(
        ModelVersionRow.review_by < today, ModelVersionRow.state != ModelState.RETIRED.value
    )
    return [_to_version(row) for row in session.scalars(query.order_by(ModelVersionRow.review_by))]


def save_version(session: Session, version: ModelVersion, *, cause_event_id: str | None = None) -> None:
    row = versioned_row(session, ModelVersionRow, version.id, read_at=version.version,
                        what=f"model version {version.id}")
    if row is None:
        row = ModelVersionRow(id=version.id, transitions=[], approvals=[])
        session.add(row)
    for name in (
        "model_name", "number", "job_id", "evaluation_id", "requester", "risk_tier", "required_approvals",
        "gate_passed", "base_model", "base_model_sha256", "adapter", "artifact", "aibom", "report", "verdict",
        "dataset_fingerprints", "decommissioning", "review_by", "alias", "tenants", "retired_reason",
        "registered_at", "updated_at",
    ):
        setattr(row, name, getattr(version, name))
    row.state = version.state.value
    row.aibom_sha256 = version.aibom["sha256"]
    stored = list(row.transitions or [])
    row.transitions = stored + [_transition_json(t, cause_event_id) for t in version.transitions[len(stored) :]]
    row.approvals = [
        {
            "approver": a.approver,
            "decision": a.decision,
            "comment": a.comment,
            "reason": a.reason,
            "override": a.override,
            "at": a.at.isoformat(),
        }
        for a in version.approvals
    ]
    session.flush()
    version.version = row.version


# ---------------------------------------------------------------- aliases


def _to_alias(row: ModelAliasRow) -> ModelAlias:
    return ModelAlias(
        name=row.name,
        version_id=row.version_id,
        tenants=list(row.tenants),
        updated_at=row.updated_at,
        history=[
            AliasMove(m["version_id"], list(m["tenants"]), m["by"], _when(m["at"]), m.get("rollback_from"),
                      bool(m.get("watermark", False)))
            for m in row.history
        ],
        version=row.version,
    )


def load_alias(session: Session, name: str) -> ModelAlias | None:
    row = session.get(ModelAliasRow, name)
    return None if row is None else _to_alias(row)


def require_alias(session: Session, name: str) -> ModelAlias:
    found = load_alias(session, name)
    if found is None:
        raise NotFound(f"alias {name!r} not found (deploy a version under it first)")
    return found


def list_aliases(session: Session) -> list[ModelAlias]:
    return [_to_alias(row) for row in session.scalars(select(ModelAliasRow).order_by(ModelAliasRow.name))]


def save_alias(session: Session, alias: ModelAlias) -> None:
    row = versioned_row(session, ModelAliasRow, alias.name, read_at=alias.version, what=f"alias {alias.name}")
    if row is None:
        row = ModelAliasRow(name=alias.name)
        session.add(row)
    row.version_id = alias.version_id
    row.tenants = list(alias.tenants)
    row.updated_at = alias.updated_at
    row.history = [
        {"version_id": m.version_id, "tenants": m.tenants, "by": m.by, "at": m.at.isoformat(),
         "rollback_from": m.rollback_from, "watermark": m.watermark}
        for m in alias.history
    ]
    session.flush()
    alias.version = row.version


def version_on_record(session: Session, version_id: str | None) -> VersionOnRecord | None:
    """A version an rlhf job names, with the method its job trained it by (the job spec is that fact's home)."""
    from services.registry.adapters.repository import load_job

    version = load_version(session, version_id) if version_id else None
    if version is None:
        return None
    job = load_job(session, version.job_id)
    return VersionOnRecord(
        version_id=version.id, state=version.state.value,
        method_kind=job.spec.method.kind if job is not None else "unknown", base_model=version.base_model,
        artifact=dict(version.artifact), aibom_sha256=str(version.aibom["sha256"]),
        adapter=job.spec.method.adapter if job is not None else "unknown",
        lora_shape=lora_shape(job.spec) if job is not None else None,
    )


def rlhf_versions(session: Session, spec: JobSpec) -> RlhfVersions:
    """The reward-model and starting versions an rlhf job names, as on record (RlhfVersions() for other jobs)."""
    return RlhfVersions(reward_model=version_on_record(session, reward_model_version(spec)),
                        policy=version_on_record(session, policy_version(spec)))
