"""Console pages for model versions: the list, a version's page (gate verdict, approvals, alias, decommissioning
plan), its AIBOM (viewed and downloaded), its evidence pack, and the lifecycle actions for the roles that hold
them: approve, deploy under an alias, retire, roll the alias back.

Roles and actions are the API's (entrypoints/models_http.py): the same access checks, and the same
approve_version / deploy_version / retire_version / rollback_alias / read_aibom functions."""

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
from services.registry.entrypoints.models_http import (
    alias_name_or_404,
    approve_version,
    deploy_version,
    read_aibom,
    retire_version,
    rollback_alias,
    rollback_target,
)
from services.registry.evidence.pack import EvidencePack, build_pack
from services.registry.evidence.render import render_html
from services.registry.model_schemas import (
    DeploymentRequest,
    ModelApprovalRequest,
    ModelVersionSummary,
    ModelVersionView,
    RetirementRequest,
    RollbackRequest,
)
from shared.ids import validate_version_id

READERS = access.READ_MODELS + access.SUBMIT
LIST_LIMIT = 200


def _version_id(value: str) -> str:
    try:
        return validate_version_id(value)
    except ValueError as exc:
        raise NotFound(f"{exc}; no such model version") from None


def actions(version: ModelVersion, viewer: Viewer, rollback_to: str | None) -> dict[str, str | None]:
    """Each lifecycle action and why the viewer cannot take it now (None: it can). The domain checks again.
    `rollback_to`: the version a rollback of the alias this version serves would go back to (None: none)."""
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
    may_roll_back = None
    if state != ModelState.DEPLOYED or not version.alias:
        may_roll_back = "only the version an alias serves now is rolled back from"
    elif not viewer.holds(access.DEPLOY):
        may_roll_back = "rolling back needs the 'deployer' role"
    elif rollback_to is None:
        may_roll_back = (f"alias {version.alias!r} served no earlier version that is still servable (retired or "
                         "rolled back from): deploy one explicitly")
    return {"approve": may_approve, "deploy": may_deploy, "retire": may_retire, "rollback": may_roll_back}


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
        rollback_to = None
        if found.state == ModelState.DEPLOYED and found.alias:
            with runtime.db.transaction() as db:
                alias = model_repository.load_alias(db, found.alias)
                target = rollback_target(db, alias) if alias is not None and alias.version_id == found.id else None
            rollback_to = target.id if target is not None else None
        return console.page(
            request,
            "model.html",
            viewer,
            version=ModelVersionView.of(found, today()),
            actions=actions(found, viewer, rollback_to),
            rollback_to=rollback_to,
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

    @app.post("/aliases/{name}/rollback")
    async def roll_back(
        request: Request, name: str, viewer: Viewer = console.requires(access.DEPLOY, "rolling back an alias")
    ) -> Response:
        form = await console.form(request, viewer)
        body = RollbackRequest.model_validate({"reason": form.get("reason", "").strip()})
        result = await rollback_alias(runtime, console.governance, viewer.principal, alias_name_or_404(name), body)
        return RedirectResponse(f"/console/models/{result.version.id}", status_code=303)

    def pack(version_id: str) -> EvidencePack:
        vid = _version_id(version_id)
        with runtime.db.transaction() as db:
            return build_pack(db, runtime.settings, vid, console.governance.now())

    reads_evidence = console.requires(access.READ_EVIDENCE, "reading an evidence pack")

    @app.get("/models/{version_id}/evidence", response_class=HTMLResponse)
    def evidence(request: Request, version_id: str, viewer: Viewer = reads_evidence) -> Response:
        found = pack(version_id)
        return console.page(request, "evidence.html", viewer, pack=found)

    @app.get("/models/{version_id}/evidence.json")
    def evidence_json(version_id: str, viewer: Viewer = reads_evidence) -> Response:
        found = pack(version_id)
        return Response(
            found.model_dump_json(indent=2).encode(),
            media_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{found.version_id}.evidence.json"'},
        )

    @app.get("/models/{version_id}/evidence.html")
    def evidence_html(version_id: str, viewer: Viewer = reads_evidence) -> Response:
        """The self-contained page `tunegate report` writes, as a download: its own inline style is not the
        console's, so it is saved rather than shown under the console's CSP."""
        found = pack(version_id)
        return Response(
            render_html(found).encode(),
            media_type="text/html; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{found.version_id}.evidence.html"'},
        )
