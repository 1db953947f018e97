"""Console pages for model versions: the list, a version's page (gate verdict, approvals, alias, decommissioning
plan), its AIBOM (viewed and downloaded) and the lifecycle actions for the roles that hold them.

Roles and actions are the API's (entrypoints/models_http.py): the same access checks, and the same
approve_version / deploy_version / retire_version / read_aibom functions."""

from __future__ import annotations

import json
from datetime import UTC, date

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.registry.adapters import model_repository
from services.registry.console.app import Console, Viewer
from services.registry.domain import access
from services.registry.domain.approvals import APPROVER_ROLE
from services.registry.domain.errors import InvalidRequest, NotFound
from services.registry.domain.model_states import MODEL_STATE_NAMES, ModelState
from services.registry.domain.model_version import ModelVersion
from services.registry.entrypoints.models_http import approve_version, deploy_version, read_aibom, retire_version
from services.registry.model_schemas import (
    DeploymentRequest,
    ModelApprovalRequest,
    ModelVersionSummary,
    ModelVersionView,
    RetirementRequest,
)
from shared.ids import validate_version_id

READERS = access.READ_MODELS + access.SUBMIT
LIST_LIMIT = 200


def _version_id(value: str) -> str:
    try:
        return validate_version_id(value)
    except ValueError as exc:
        raise NotFound(f"{exc}; no such model version") from None


def actions(version: ModelVersion, viewer: Viewer) -> dict[str, str | None]:
    """Each lifecycle action and why the viewer cannot take it now (None: it can). The domain checks again."""
    state = version.state
    may_approve = None
    if APPROVER_ROLE not in viewer.principal.roles:
        may_approve = f"approving needs the '{APPROVER_ROLE}' role"
    elif state != ModelState.CANDIDATE:
        may_approve = f"the version is {state.value}, not a candidate"
    elif viewer.principal.name == version.requester:
        may_approve = "you requested the job it was trained for: separation of duties bars you from approving it"
    elif any(a.approver == viewer.principal.name for a in version.approvals):
        may_approve = "you already approved it"
    may_deploy = None
    if not viewer.holds(access.DEPLOY):
        may_deploy = "deploying needs the 'deployer' role"
    elif state not in (ModelState.APPROVED, ModelState.DEPRECATED, ModelState.DEPLOYED):
        may_deploy = f"the version is {state.value}: only an approved (or earlier deployed) version is deployed"
    may_retire = None
    if not viewer.holds(access.RETIRE):
        may_retire = "retiring needs the 'deployer' or 'admin' role"
    elif state == ModelState.RETIRED:
        may_retire = "the version is retired already"
    return {"approve": may_approve, "deploy": may_deploy, "retire": may_retire}


def add_routes(app: FastAPI, console: Console) -> None:
    runtime = console.runtime

    def today() -> date:
        return console.governance.now().astimezone(UTC).date()

    def load(viewer: Viewer, version_id: str) -> ModelVersion:
        with runtime.db.transaction() as db:
            found = model_repository.require_version(db, _version_id(version_id))
        access.check_reads_version(viewer.principal, found.id, found.requester)
        return found

    @app.get("/models", response_class=HTMLResponse)
    def models(
        request: Request,
        state: str | None = Query(default=None),
        viewer: Viewer = console.requires(READERS, "listing model versions"),
    ) -> Response:
        state = (state or "").strip() or None
        if state is not None and state not in MODEL_STATE_NAMES:
            raise InvalidRequest(f"state: unknown state {state!r} (known: {', '.join(sorted(MODEL_STATE_NAMES))})")
        with runtime.db.transaction() as db:
            found = model_repository.list_versions(db, state=state, limit=LIST_LIMIT)
        every = viewer.holds(access.READ_MODELS)  # as the API: a requester sees versions of its own jobs
        versions = [ModelVersionSummary.of(v, today()) for v in found if every or v.requester == viewer.principal.name]
        return console.page(
            request,
            "models.html",
            viewer,
            versions=versions,
            state=state,
            states=sorted(MODEL_STATE_NAMES),
            limit=LIST_LIMIT,
        )

    @app.get("/models/{version_id}", response_class=HTMLResponse)
    def model(
        request: Request, version_id: str, viewer: Viewer = console.requires(READERS, "reading a model version")
    ) -> Response:
        found = load(viewer, version_id)
        return console.page(
            request, "model.html", viewer, version=ModelVersionView.of(found, today()), actions=actions(found, viewer)
        )

    @app.get("/models/{version_id}/aibom", response_class=HTMLResponse)
    def aibom(
        request: Request, version_id: str, viewer: Viewer = console.requires(READERS, "reading an AIBOM")
    ) -> Response:
        found = load(viewer, version_id)
        document = read_aibom(runtime, found)
        return console.page(
            request,
            "aibom.html",
            viewer,
            version_id=found.id,
            sha256=found.aibom["sha256"],
            aibom_json=json.dumps(document, indent=2, ensure_ascii=False),
        )

    @app.get("/models/{version_id}/aibom.json")
    def aibom_download(version_id: str, viewer: Viewer = console.requires(READERS, "reading an AIBOM")) -> Response:
        found = load(viewer, version_id)
        body = json.dumps(read_aibom(runtime, found), indent=2, ensure_ascii=False).encode()
        return Response(
            body,
            media_type="application/vnd.cyclonedx+json",
            headers={"Content-Disposition": f'attachment; filename="{found.id}.aibom.cdx.json"'},
        )

    @app.post("/models/{version_id}/approval")
    async def approve(
        request: Request, version_id: str, viewer: Viewer = console.requires(access.DECIDE, "approving a model version")
    ) -> Response:
        form = await console.form(request, viewer)
        body = ModelApprovalRequest.model_validate({"comment": form.get("comment", "")})
        await approve_version(runtime, console.governance, viewer.principal, _version_id(version_id), body)
        return RedirectResponse(f"/console/models/{version_id}", status_code=303)

    @app.post("/models/{version_id}/deployment")
    async def deploy(
        request: Request, version_id: str, viewer: Viewer = console.requires(access.DEPLOY, "deploying a model version")
    ) -> Response:
        form = await console.form(request, viewer)
        tenants = [t.strip() for t in form.get("tenants", "").split(",") if t.strip()]
        body = DeploymentRequest.model_validate(
            {"alias": form.get("alias", "").strip(), "tenants": tenants, "watermark": form.get("watermark") == "on"}
        )
        await deploy_version(runtime, console.governance, viewer.principal, _version_id(version_id), body)
        return RedirectResponse(f"/console/models/{version_id}", status_code=303)

    @app.post("/models/{version_id}/retirement")
    async def retire(
        request: Request, version_id: str, viewer: Viewer = console.requires(access.RETIRE, "retiring a model version")
    ) -> Response:
        form = await console.form(request, viewer)
        body = RetirementRequest.model_validate({"reason": form.get("reason", "").strip()})
        await retire_version(runtime, console.governance, viewer.principal, _version_id(version_id), body)
        return RedirectResponse(f"/console/models/{version_id}", status_code=303)
