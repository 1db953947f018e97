"""Erasures: rows <-> aggregates. Callers own the session (and so the transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.registry.adapters.tables import ErasureRow
from services.registry.adapters.write_back import versioned_row
from services.registry.domain.erasure import DatasetHit, Erasure, Step
from services.registry.domain.errors import NotFound


def _moment(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _document(erasure: Erasure) -> dict[str, Any]:
    return {
        "reason": erasure.reason,
        "datasets": [h.as_dict() for h in erasure.datasets],
        "versions": list(erasure.versions),
        "served": dict(erasure.served),
        "replacements": dict(erasure.replacements),
        "retire_due": None if erasure.retire_due is None else erasure.retire_due.isoformat(),
        "certificate": erasure.certificate,
        "steps": [
            {"name": s.name, "status": s.status, "at": s.at.isoformat(), "detail": s.detail, "event_id": s.event_id,
             "due": None if s.due is None else s.due.isoformat()}
            for s in erasure.steps
        ],
    }


def _to_erasure(row: ErasureRow) -> Erasure:
    doc = row.document
    return Erasure(
        id=row.id,
        subject_key=row.subject_key,
        reason=doc["reason"],
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        updated_at=row.updated_at,
        datasets=[DatasetHit(d["job_id"], d["fingerprint"], tuple(d["record_hashes"])) for d in doc["datasets"]],
        versions=list(doc["versions"]),
        served=dict(doc["served"]),
        replacements=dict(doc["replacements"]),
        retire_due=_moment(doc["retire_due"]),
        certificate=doc["certificate"],
        steps=[
            Step(s["name"], s["status"], datetime.fromisoformat(s["at"]), s["detail"], s["event_id"], _moment(s["due"]))
            for s in doc["steps"]
        ],
        version=row.version,
    )


def load_erasure(session: Session, erasure_id: str) -> Erasure | None:
    row = session.get(ErasureRow, erasure_id)
    return None if row is None else _to_erasure(row)


def require_erasure(session: Session, erasure_id: str) -> Erasure:
    found = load_erasure(session, erasure_id)
    if found is None:
        raise NotFound(f"erasure {erasure_id} not found")
    return found


def list_erasures(session: Session, *, limit: int = 500) -> list[Erasure]:
    rows = session.scalars(select(ErasureRow).order_by(ErasureRow.requested_at.desc()).limit(limit))
    return [_to_erasure(row) for row in rows]


def open_erasures(session: Session) -> list[Erasure]:
    rows = session.scalars(select(ErasureRow).where(ErasureRow.state != "completed").order_by(ErasureRow.id))
    return [_to_erasure(row) for row in rows]


def open_for_subject(session: Session, subject_key: str) -> Erasure | None:
    row = session.scalars(
        select(ErasureRow).where(ErasureRow.subject_key == subject_key, ErasureRow.state != "completed")
    ).first()
    return None if row is None else _to_erasure(row)


def save_erasure(session: Session, erasure: Erasure) -> None:
    row = versioned_row(session, ErasureRow, erasure.id, read_at=erasure.version, what=f"erasure {erasure.id}")
    if row is None:
        row = ErasureRow(id=erasure.id, subject_key=erasure.subject_key, requested_by=erasure.requested_by,
                         requested_at=erasure.requested_at)
        session.add(row)
    row.state = erasure.state
    row.document = _document(erasure)
    row.updated_at = erasure.updated_at
    session.flush()
    erasure.version = row.version
