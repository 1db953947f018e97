"""Incidents: rows <-> aggregates. Callers own the session (and so the transaction)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.registry.adapters.tables import IncidentRow
from services.registry.adapters.write_back import versioned_row
from services.registry.domain.errors import NotFound
from services.registry.domain.incidents import Incident, IncidentStep

_FIELDS = (
    "title", "description", "severity", "status", "affected_versions", "audit_entries", "aware_at", "opened_by",
    "opened_at", "updated_at", "reported_at", "report_reference", "closed_at", "resolution",
)


def _to_incident(row: IncidentRow) -> Incident:
    return Incident(
        id=row.id,
        **{name: getattr(row, name) for name in _FIELDS if name not in ("affected_versions", "audit_entries")},
        affected_versions=list(row.affected_versions),
        audit_entries=list(row.audit_entries),
        history=[
            IncidentStep(h["action"], h["by"], datetime.fromisoformat(h["at"]), h["note"], h["event_id"])
            for h in row.history
        ],
        version=row.version,
    )


def load_incident(session: Session, incident_id: str) -> Incident | None:
    row = session.get(IncidentRow, incident_id)
    return None if row is None else _to_incident(row)


def require_incident(session: Session, incident_id: str) -> Incident:
    found = load_incident(session, incident_id)
    if found is None:
        raise NotFound(f"incident {incident_id} not found")
    return found


def list_incidents(session: Session, *, status: str | None = None, limit: int = 500) -> list[Incident]:
    query = select(IncidentRow).order_by(IncidentRow.opened_at.desc(), IncidentRow.id).limit(limit)
    if status is not None:
        query = query.where(IncidentRow.status == status)
    return [_to_incident(row) for row in session.scalars(query)]


def incidents_of_version(session: Session, version_id: str) -> list[Incident]:
    """Every incident naming the version, oldest first (the JSON list is filtered here: incidents are few)."""
    rows = session.scalars(select(IncidentRow).order_by(IncidentRow.opened_at, IncidentRow.id))
    return [_to_incident(row) for row in rows if version_id in row.affected_versions]


def save_incident(session: Session, incident: Incident) -> None:
    row = versioned_row(session, IncidentRow, incident.id, read_at=incident.version, what=f"incident {incident.id}")
    if row is None:
        row = IncidentRow(id=incident.id, history=[])
        session.add(row)
    for name in _FIELDS:
        setattr(row, name, getattr(incident, name))
    row.affected_versions = list(incident.affected_versions)
    row.audit_entries = list(incident.audit_entries)
    row.history = [
        {"action": h.action, "by": h.by, "at": h.at.isoformat(), "note": h.note, "event_id": h.event_id}
        for h in incident.history
    ]
    session.flush()
    incident.version = row.version
