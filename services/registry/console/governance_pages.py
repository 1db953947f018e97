"""Console pages for incidents (EU AI Act Art. 73: list, open, update, close) and erasure requests (GDPR Art. 17:
list, steps, signed certificate viewed and downloaded).

Roles and actions are the API's (entrypoints/incidents_http.py, entrypoints/erasure_http.py): the same access
checks, bodies (incident_schemas.py) and the same open_incident_as / update_incident / close_incident functions.
Requesting an erasure stays in the CLI and API (`tunegate erasure request`): the subject's id is personal
data, typed once where it is needed, never into a page that browsers cache or autofill."""

from __future__ import annotations

import json

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.audit.ledger_proofs import ProofUnavailable
from services.registry.adapters import erasure_repository, incident_repository
from services.registry.console.app import Console, Viewer
from services.registry.console.audit_pages import LedgerReader
from services.registry.domain import access
from services.registry.domain.errors import Conflict, InvalidRequest, NotFound
from services.registry.domain.incidents import REPORTING_RULES, SEVERITIES, STATUSES
from services.registry.entrypoints.erasure_http import erasure_id_or_404
from services.registry.entrypoints.incidents_http import (
    close_incident,
    incident_id_or_404,
    open_incident_as,
    update_incident,
)
from services.registry.erasure.certificate import attach_audit_proofs
from services.registry.erasure_schemas import ErasureView
from services.registry.incident_schemas import IncidentClose, IncidentOpen, IncidentUpdate, IncidentView

LIST_LIMIT = 200


def _listed(value: str | None) -> list[str]:
    """A comma- or whitespace-separated form field as a list (the schema bounds its length and items)."""
    return [item for item in (value or "").replace(",", " ").split() if item]


def add_routes(app: FastAPI, console: Console) -> None:
    runtime = console.runtime
    governance = console.governance
    reads_incidents = console.requires(access.READ_INCIDENTS, "reading incidents")
    reads_erasures = console.requires(access.READ_ERASURES, "reading erasures")
    ledger = LedgerReader(console)

    # ------------------------------------------------------------ incidents

    @app.get("/incidents", response_class=HTMLResponse)
    def incidents(
        request: Request, status: str | None = Query(default=None), viewer: Viewer = reads_incidents
    ) -> Response:
        status = (status or "").strip() or None
        if status is not None and status not in STATUSES:
            raise InvalidRequest(f"status: unknown status {status!r} (known: {', '.join(STATUSES)})")
        with runtime.db.transaction() as db:
            found = incident_repository.list_incidents(db, status=status, limit=LIST_LIMIT)
        now = governance.now()
        return console.page(
            request,
            "incidents.html",
            viewer,
            incidents=[IncidentView.of(i, now) for i in found],
            selected=status,
            statuses=STATUSES,
            severities=SEVERITIES,
            rules=REPORTING_RULES,
            manages=viewer.holds(access.MANAGE_INCIDENTS),
            limit=LIST_LIMIT,
        )

    @app.get("/incidents/{incident_id}", response_class=HTMLResponse)
    def incident(request: Request, incident_id: str, viewer: Viewer = reads_incidents) -> Response:
        with runtime.db.transaction() as db:
            found = incident_repository.require_incident(db, incident_id_or_404(incident_id))
        return console.page(
            request,
            "incident.html",
            viewer,
            incident=IncidentView.of(found, governance.now()),
            severities=SEVERITIES,
            manages=viewer.holds(access.MANAGE_INCIDENTS),
        )

    manages = console.requires(access.MANAGE_INCIDENTS, "managing incidents")

    @app.post("/incidents")
    async def open_(request: Request, viewer: Viewer = manages) -> Response:
        form = await console.form(request, viewer)
        body = IncidentOpen.model_validate({
            "title": form.get("title", "").strip(),
            "severity": form.get("severity", ""),
            "affected_versions": _listed(form.get("affected_versions")),
            "description": form.get("description", "").strip(),
            "audit_entries": _listed(form.get("audit_entries")),
        })
        view = await open_incident_as(runtime, governance, viewer.principal, body)
        return RedirectResponse(f"/console/incidents/{view.id}", status_code=303)

    @app.post("/incidents/{incident_id}/updates")
    async def update(request: Request, incident_id: str, viewer: Viewer = manages) -> Response:
        iid = incident_id_or_404(incident_id)
        form = await console.form(request, viewer)
        body = IncidentUpdate.model_validate({
            "note": form.get("note", "").strip(),
            "severity": form.get("severity") or None,
            "add_versions": _listed(form.get("add_versions")),
            "add_audit_entries": _listed(form.get("add_audit_entries")),
            "reported_reference": form.get("reported_reference", "").strip() or None,
        })
        await update_incident(runtime, governance, viewer.principal, iid, body)
        return RedirectResponse(f"/console/incidents/{iid}", status_code=303)

    @app.post("/incidents/{incident_id}/close")
    async def close(request: Request, incident_id: str, viewer: Viewer = manages) -> Response:
        iid = incident_id_or_404(incident_id)
        form = await console.form(request, viewer)
        body = IncidentClose.model_validate({"resolution": form.get("resolution", "").strip()})
        await close_incident(runtime, governance, viewer.principal, iid, body)
        return RedirectResponse(f"/console/incidents/{iid}", status_code=303)

    # ------------------------------------------------------------ erasures

    @app.get("/erasures", response_class=HTMLResponse)
    def erasures(request: Request, viewer: Viewer = reads_erasures) -> Response:
        with runtime.db.transaction() as db:
            found = erasure_repository.list_erasures(db, limit=LIST_LIMIT)
        return console.page(
            request, "erasures.html", viewer, erasures=[ErasureView.of(e) for e in found], limit=LIST_LIMIT
        )

    def certificate_of(erasure_id: str) -> tuple[ErasureView, object | None]:
        with runtime.db.transaction() as db:
            found = erasure_repository.require_erasure(db, erasure_id_or_404(erasure_id))
        return ErasureView.of(found), found.certificate

    @app.get("/erasures/{erasure_id}", response_class=HTMLResponse)
    def erasure(request: Request, erasure_id: str, viewer: Viewer = reads_erasures) -> Response:
        view, certificate = certificate_of(erasure_id)
        return console.page(
            request,
            "erasure.html",
            viewer,
            erasure=view,
            certificate_json=json.dumps(certificate, indent=2, ensure_ascii=False) if certificate else None,
        )

    @app.get("/erasures/{erasure_id}/certificate.json")
    def certificate(erasure_id: str, viewer: Viewer = reads_erasures) -> Response:
        """The signed certificate with, as `tunegate erasure show --certificate` writes it, the inclusion proof of
        every step's event when this host's ledger has signed them all."""
        view, found = certificate_of(erasure_id)
        if not isinstance(found, dict):
            raise Conflict(f"erasure {view.id} is {view.state}; its certificate is issued when every step is done")
        document = dict(found)
        try:
            attach_audit_proofs(document, ledger.store(), ledger.public_key_pem())
        except (NotFound, ProofUnavailable):
            document = dict(found)  # no ledger here, or a step not signed yet: the certificate alone still verifies
        return Response(
            json.dumps(document, indent=2, ensure_ascii=False).encode(),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{view.id}.certificate.json"'},
        )
