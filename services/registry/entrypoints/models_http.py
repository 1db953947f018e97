"""Model-version routes of the registry API: list, read, AIBOM, evidence pack, approve, deploy under an alias,
retire, and alias rollback. Same authentication and JSON errors as the job routes (entrypoints/http.py adds these
to its app); who may do what is in domain/access.py, the rules in the aggregates.

Writes run in `runtime.transaction(...)`: the versions and alias they change and the events they record
commit together (a deploy that deprecates the previous version is one act)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query

from services.registry.adapters import model_repository, outbox, repository
from services.registry.adapters.monitoring_flags import flag_counts, flags_of
from services.registry.domain import access, deployments
from services.registry.domain.errors import Conflict, InvalidRequest, NotFound
from services.registry.domain.governance import Governance
from services.registry.domain.model_states import MODEL_STATE_NAMES, ModelState
from services.registry.domain.model_version import ModelVersion
from services.registry.domain.principals import Principal
from services.registry.erasure.service import note_deployment
from services.registry.model_schemas import (
    AliasView,
    DeploymentRequest,
    DeploymentResult,
    ModelApprovalRequest,
    ModelApprovalResult,
    ModelVersionSummary,
    ModelVersionView,
    RetirementRequest,
    RollbackRequest,
)
from shared.events.payloads import ArtifactRef
from shared.ids import validate_model_name, validate_version_id
from shared.storage.artifacts import ArtifactStore

if TYPE_CHECKING:
    from services.registry.entrypoints.http import RuntimeLike

MAX_AIBOM_BYTES = 16 * 1024 * 1024


def _version_id(value: str) -> str:
    try:
        return validate_version_id(value)
    except ValueError as exc:
        raise NotFound(f"{exc}; no such model version") from None


def alias_name_or_404(value: str) -> str:
    try:
        return validate_model_name(value, "alias")
    except ValueError as exc:
        raise NotFound(f"{exc}; no such alias") from None


def _today(governance: Governance) -> date:
    return governance.now().astimezone(UTC).date()


# The actions the API and the web console (services/registry/console/) share: one copy of each.


def read_aibom(runtime: RuntimeLike, found: ModelVersion) -> Any:
    """The version's AIBOM from the artifact store, checked against the hash on record."""
    store = ArtifactStore(runtime.settings.home_dir / "artifacts")
    try:
        path = store.verify(ArtifactRef.model_validate(found.aibom))
    except FileNotFoundError:
        raise NotFound(f"the AIBOM of {found.id} ({found.aibom['uri']}) is not in this registry's store") from None
    except ValueError as exc:
        raise Conflict(f"the stored AIBOM of {found.id} does not match the hash on record: {exc}") from None
    if path.stat().st_size > MAX_AIBOM_BYTES:
        raise Conflict(f"the AIBOM of {found.id} is over {MAX_AIBOM_BYTES} bytes; read it from the store")
    return json.loads(path.read_bytes())


async def approve_version(
    runtime: RuntimeLike, governance: Governance, approver: Principal, vid: str, body: ModelApprovalRequest
) -> ModelApprovalResult:
    async with runtime.transaction(actor=approver.name, subject=vid) as ctx:
        version = model_repository.require_version(ctx.db, vid)
        approved = version.approve(approver, comment=body.comment, now=governance.now())
        outbox.commit_version(ctx, version)
    return ModelApprovalResult(
        version_id=vid,
        approver=approver.name,
        state=version.state.value,
        approvals_so_far=version.approvals_so_far,
        required_approvals=version.required_approvals,
        approved=approved,
        version=ModelVersionView.of(version, _today(governance)),
    )


async def deploy_version(
    runtime: RuntimeLike, governance: Governance, deployer: Principal, vid: str, body: DeploymentRequest
) -> DeploymentResult:
    now = governance.now()
    async with runtime.transaction(actor=deployer.name, subject=vid) as ctx:
        version = model_repository.require_version(ctx.db, vid)
        alias = model_repository.load_alias(ctx.db, body.alias) or deployments.ModelAlias.new(body.alias, now)
        current = None
        if alias.version_id is not None and alias.version_id != vid:
            current = model_repository.require_version(ctx.db, alias.version_id)
        trained_by = repository.require_job(ctx.db, version.job_id).spec.method.kind
        deployments.deploy(version, alias, current, tenants=list(body.tenants), by=deployer, now=now,
                           method_kind=trained_by, watermark=body.watermark)
        # A tainted version is refused; a replacement moves its erasure on (services/registry/erasure/).
        note_deployment(ctx, runtime, version, body.alias, deployer.name, now)
        outbox.commit_version(ctx, version)
        if current is not None:
            outbox.commit_version(ctx, current)
        outbox.commit_alias(ctx, alias)
    return DeploymentResult(
        version=ModelVersionView.of(version, _today(governance)),
        alias=AliasView.of(alias),
        deprecated=None if current is None else current.id,
    )


async def retire_version(
    runtime: RuntimeLike, governance: Governance, principal: Principal, vid: str, body: RetirementRequest
) -> ModelVersionView:
    now = governance.now()
    async with runtime.transaction(actor=principal.name, subject=vid) as ctx:
        version = model_repository.require_version(ctx.db, vid)
        served = version.retire(by=principal.name, reason=body.reason, now=now)
        outbox.commit_version(ctx, version)
        if served is not None:
            alias = model_repository.require_alias(ctx.db, served)
            deployments.release(alias, version, by=principal.name, now=now)
            outbox.commit_alias(ctx, alias)
    return ModelVersionView.of(version, _today(governance))


def rollback_target(session: Any, alias: deployments.ModelAlias) -> ModelVersion | None:
    """The version a rollback of `alias` would serve: the newest it served before that is still servable."""
    for candidate_id in alias.rollback_candidates():
        candidate = model_repository.require_version(session, candidate_id)
        if candidate.state in (ModelState.DEPRECATED, ModelState.APPROVED):
            return candidate
    return None


async def rollback_alias(
    runtime: RuntimeLike, governance: Governance, deployer: Principal, alias_name: str, body: RollbackRequest
) -> DeploymentResult:
    """Put `alias_name` back on the version it served before (domain/deployments.py rollback)."""
    now = governance.now()
    async with runtime.transaction(actor=deployer.name, subject=alias_name) as ctx:
        alias = model_repository.require_alias(ctx.db, alias_name)
        current = None if alias.version_id is None else model_repository.require_version(ctx.db, alias.version_id)
        target = rollback_target(ctx.db, alias)
        if target is None:
            raise Conflict(
                f"alias {alias_name!r} has no earlier version to roll back to (every version it served before is "
                "retired or was rolled back from); deploy a version explicitly"
            )
        deployments.rollback(alias, current, target, by=deployer, now=now, reason=body.reason.strip())
        note_deployment(ctx, runtime, target, alias_name, deployer.name, now)  # never back to a tainted one
        outbox.commit_version(ctx, target)
        if current is not None:
            outbox.commit_version(ctx, current)
        outbox.commit_alias(ctx, alias)
    return DeploymentResult(
        version=ModelVersionView.of(target, _today(governance)),
        alias=AliasView.of(alias),
        deprecated=None if current is None else current.id,
    )


def add_model_routes(
    app: FastAPI, runtime: RuntimeLike, governance: Governance, requires: Callable[[tuple[str, ...], str], Any]
) -> None:
    readers = access.READ_MODELS + access.SUBMIT

    def today() -> date:
        return _today(governance)

    @app.get("/models", response_model=list[ModelVersionSummary])
    def models(
        state: str | None = Query(default=None),
        model: str | None = Query(default=None, description="Only versions of this model name."),
        limit: int = Query(default=200, ge=1, le=5000),
        principal: Principal = requires(readers, "listing model versions"),
    ) -> list[ModelVersionSummary]:
        if state is not None and state not in MODEL_STATE_NAMES:
            raise InvalidRequest(f"state: unknown state {state!r} (known: {', '.join(sorted(MODEL_STATE_NAMES))})")
        if model is not None:
            try:
                validate_model_name(model)
            except ValueError as exc:
                raise InvalidRequest(f"model: {exc}") from None
        with runtime.db.transaction() as session:
            found = model_repository.list_versions(session, model_name=model, state=state, limit=limit)
            flagged = flag_counts(session, [v.id for v in found])
        every = principal.has_any_role(access.READ_MODELS)
        return [ModelVersionSummary.of(v, today(), flagged.get(v.id, 0)) for v in found
                if every or v.requester == principal.name]

    @app.get("/models/{version_id}", response_model=ModelVersionView)
    def model_version(
        version_id: str, principal: Principal = requires(readers, "reading a model version")
    ) -> ModelVersionView:
        with runtime.db.transaction() as session:
            found = model_repository.require_version(session, _version_id(version_id))
            flags = flags_of(session, found.id)
        access.check_reads_version(principal, found.id, found.requester)
        return ModelVersionView.of(found, today(), flags)

    @app.get("/models/{version_id}/aibom")
    def model_aibom(version_id: str, principal: Principal = requires(readers, "reading an AIBOM")) -> Any:
        with runtime.db.transaction() as session:
            found = model_repository.require_version(session, _version_id(version_id))
        access.check_reads_version(principal, found.id, found.requester)
        return read_aibom(runtime, found)

    @app.get("/models/{version_id}/evidence")
    def model_evidence(
        version_id: str, _: Principal = requires(access.READ_EVIDENCE, "reading an evidence pack")
    ) -> Any:
        """The compliance evidence pack (services/registry/evidence/): obligations, evidence, ledger proofs."""
        from services.registry.evidence.pack import build_pack

        vid = _version_id(version_id)
        with runtime.db.transaction() as session:
            pack = build_pack(session, runtime.settings, vid, governance.now())
        return pack.model_dump(mode="json")

    @app.post("/models/{version_id}/approvals", response_model=ModelApprovalResult)
    async def approve_model(
        version_id: str,
        body: ModelApprovalRequest,
        approver: Principal = requires(access.DECIDE, "approving a model version"),
    ) -> ModelApprovalResult:
        return await approve_version(runtime, governance, approver, _version_id(version_id), body)

    @app.post("/models/{version_id}/deployments", response_model=DeploymentResult)
    async def deploy_model(
        version_id: str,
        body: DeploymentRequest,
        deployer: Principal = requires(access.DEPLOY, "deploying a model version"),
    ) -> DeploymentResult:
        return await deploy_version(runtime, governance, deployer, _version_id(version_id), body)

    @app.post("/models/{version_id}/retirement", response_model=ModelVersionView)
    async def retire_model(
        version_id: str,
        body: RetirementRequest,
        principal: Principal = requires(access.RETIRE, "retiring a model version"),
    ) -> ModelVersionView:
        return await retire_version(runtime, governance, principal, _version_id(version_id), body)

    @app.get("/aliases", response_model=list[AliasView])
    def aliases(_: Principal = requires(readers, "listing aliases")) -> list[AliasView]:
        with runtime.db.transaction() as session:
            return [AliasView.of(a) for a in model_repository.list_aliases(session)]

    @app.post("/aliases/{name}/rollback", response_model=DeploymentResult)
    async def rollback(
        name: str,
        body: RollbackRequest,
        deployer: Principal = requires(access.DEPLOY, "rolling back an alias"),
    ) -> DeploymentResult:
        return await rollback_alias(runtime, governance, deployer, alias_name_or_404(name), body)
