"""Incident routes of the registry API (EU AI Act Art. 73): open, list (?status), read, update, close.
Same authentication and JSON errors as the other routes (entrypoints/http.py adds these to its app); who
may do what is in domain/access.py, the rules (deadlines, what may change) in domain/incidents.py.

Writes run in `runtime.transaction(...)`: the incident and the event it records commit together."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query
from sqlalchemy.orm import Session

from services.registry.adapters import incident_repository, model_repository, outbox
from services.registry.domain import access
from services.registry.domain.errors import InvalidRequest, NotFound
from services.registry.domain.governance import Governance
from services.registry.domain.incidents import STATUSES, open_incident, validate_incident_id
from services.registry.domain.principals import Principal
from services.registry.incident_schemas import IncidentClose, IncidentOpen, IncidentUpdate, IncidentView
from shared.ids import UnsafeIdError

if TYPE_CHECKING:
    from services.registry.entrypoints.http import RuntimeLike


def incident_id_or_404(value: str) -> str:
    try:
        return validate_incident_id(value)
    except UnsafeIdError as exc:
        raise NotFound(f"{exc}; no such incident") from None


def _known(session: Session, version_ids: list[str]) -> set[str]:
    """Which of the named versions the registry holds (the domain refuses the others, naming them)."""
    wanted = {v.strip() for v in version_ids}
    return {v for v in wanted if model_repository.load_version(session, v) is not None}


# The actions the API and the web console (services/registry/console/) share: one copy of each.


async def open_incident_as(
    runtime: RuntimeLike, governance: Governance, principal: Principal, body: IncidentOpen
) -> IncidentView:
    now = governance.now()
    async with runtime.transaction(actor=principal.name) as ctx:
        incident = open_incident(
            title=body.title, severity=body.severity, affected_versions=body.affected_versions,
            known_versions=_known(ctx.db, body.affected_versions), by=principal.name, now=now,
            description=body.description, audit_entries=body.audit_entries, aware_at=body.aware_at,
        )
        outbox.commit_incident(ctx, incident)
    return IncidentView.of(incident, now)


async def update_incident(
    runtime: RuntimeLike, governance: Governance, principal: Principal, iid: str, body: IncidentUpdate
) -> IncidentView:
    now = governance.now()
    async with runtime.transaction(actor=principal.name, subject=iid) as ctx:
        found = incident_repository.require_incident(ctx.db, iid)
        found.update(
            by=principal.name, now=now, note=body.note, severity=body.severity, add_versions=body.add_versions,
            known_versions=_known(ctx.db, body.add_versions), add_audit_entries=body.add_audit_entries,
            reported_reference=body.reported_reference,
        )
        outbox.commit_incident(ctx, found)
    return IncidentView.of(found, now)


async def close_incident(
    runtime: RuntimeLike, governance: Governance, principal: Principal, iid: str, body: IncidentClose
) -> IncidentView:
    now = governance.now()
    async with runtime.transaction(actor=principal.name, subject=iid) as ctx:
        found = incident_repository.require_incident(ctx.db, iid)
        found.close(by=principal.name, now=now, resolution=body.resolution)
        outbox.commit_incident(ctx, found)
    return IncidentView.of(found, now)


def add_incident_routes(
    app: FastAPI, runtime: RuntimeLike, governance: Governance, requires: Callable[[tuple[str, ...], str], Any]
) -> None:
    @app.post("/incidents", response_model=IncidentView, status_code=201)
    async def open_(
        body: IncidentOpen, principal: Principal = requires(access.MANAGE_INCIDENTS, "opening an incident")
    ) -> IncidentView:
        return await open_incident_as(runtime, governance, principal, body)

    @app.get("/incidents", response_model=list[IncidentView])
    def incidents(
        status: str | None = Query(default=None),
        limit: int = Query(default=200, ge=1, le=5000),
        _: Principal = requires(access.READ_INCIDENTS, "listing incidents"),
    ) -> list[IncidentView]:
        if status is not None and status not in STATUSES:
            raise InvalidRequest(f"status: unknown status {status!r} (known: {', '.join(STATUSES)})")
        with runtime.db.transaction() as session:
            found = incident_repository.list_incidents(session, status=status, limit=limit)
        now = governance.now()
        return [IncidentView.of(i, now) for i in found]

    @app.get("/incidents/{incident_id}", response_model=IncidentView)
    def incident(
        incident_id: str, _: Principal = requires(access.READ_INCIDENTS, "reading an incident")
    ) -> IncidentView:
        with runtime.db.transaction() as session:
            found = incident_repository.require_incident(session, incident_id_or_404(incident_id))
        return IncidentView.of(found, governance.now())

    @app.post("/incidents/{incident_id}/updates", response_model=IncidentView)
    async def update(
        incident_id: str,
        body: IncidentUpdate,
        principal: Principal = requires(access.MANAGE_INCIDENTS, "updating an incident"),
    ) -> IncidentView:
        return await update_incident(runtime, governance, principal, incident_id_or_404(incident_id), body)

    @app.post("/incidents/{incident_id}/close", response_model=IncidentView)
    async def close(
        incident_id: str,
        body: IncidentClose,
        principal: Principal = requires(access.MANAGE_INCIDENTS, "closing an incident"),
    ) -> IncidentView:
        return await close_incident(runtime, governance, principal, incident_id_or_404(incident_id), body)
