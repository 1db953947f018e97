"""The registry HTTP API: jobs (read, approve, cancel, evaluate again), model versions (entrypoints/models_http.py),
gateway API keys (entrypoints/api_keys_http.py), incidents (entrypoints/incidents_http.py), principals (admin)
and the first-admin bootstrap.
JSON errors everywhere: {"error": <code>, "detail": <what, where, why>}.

Every route but /healthz and /admin/bootstrap needs `Authorization: Bearer <token>`; who may do what is
decided once, in domain/access.py. Reads use short transactions; writes run in
`runtime.transaction(...)`, so the change, its history and the events it causes (published after commit)
are one unit. Bodies are capped before they are read (entrypoints/limits.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse

from services.registry.adapters import first_admin, model_repository, outbox, repository
from services.registry.domain import access
from services.registry.domain.errors import (
    InvalidRequest,
    MalformedBody,
    Unauthenticated,
)
from services.registry.domain.governance import Governance
from services.registry.domain.job import DecisionOutcome
from services.registry.domain.principals import Principal, SigningKey, hash_token, new_token
from services.registry.domain.states import STATE_NAMES
from services.registry.entrypoints.api_keys_http import add_api_key_routes
from services.registry.entrypoints.erasure_http import add_erasure_routes
from services.registry.entrypoints.errors import add_error_handlers, error_response
from services.registry.entrypoints.incidents_http import add_incident_routes
from services.registry.entrypoints.limits import BodyLimit, malformed_body
from services.registry.entrypoints.models_http import add_model_routes
from services.registry.schemas import (
    AdminBootstrap,
    ApprovalRequest,
    ApprovalResult,
    CancelRequest,
    CancelResult,
    EvaluationRequestView,
    EvaluationRunRequest,
    EvaluationView,
    JobSummary,
    JobView,
    PrincipalCreate,
    PrincipalCredentials,
    PrincipalRevoke,
    PrincipalRotate,
    PrincipalView,
)
from services.registry.settings import RegistryAPISettings
from shared.bus.context import HandlerContext
from shared.config import Settings
from shared.security.keys import PublicKeyError, key_id_for, load_public_key, public_key_raw
from shared.storage.db import Database

log = logging.getLogger("tunegate.registry.http")

class RuntimeLike(Protocol):
    """The slice of ServiceRuntime the API needs (tests provide a small fake)."""

    settings: Settings
    db: Database

    def transaction(self, *, actor: str, subject: str | None = None) -> AbstractAsyncContextManager[HandlerContext]: ...


def join_job_trace(job_traceparent: str | None) -> str | None:
    """Link this request's span (FastAPI opens the SERVER span and an endpoint span under it) to the job's
    trace, and return the traceparent the events it causes carry: the job's own, so the decision shows in
    the job's trace and the request stays a trace of its own."""
    from opentelemetry import trace

    from shared.telemetry import context_from_traceparent

    job_span = trace.get_current_span(context_from_traceparent(job_traceparent)).get_span_context()
    if job_span.is_valid:
        trace.get_current_span().add_link(job_span, {"tunegate.link": "job"})
    return job_traceparent


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("Authorization header missing: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization header must be 'Bearer <token>'")
    return token.strip()


def _signing_key(text: str | None, now: Any) -> SigningKey | None:
    if text is None:
        return None
    try:
        key = load_public_key(text)
    except (PublicKeyError, ValueError) as exc:
        raise InvalidRequest(f"public_key: {exc}") from None
    return SigningKey(key_id=key_id_for(key), public_key=public_key_raw(key).hex(), added_at=now)


Requires = Callable[[tuple[str, ...], str], Any]


def requirement(runtime: RuntimeLike) -> Requires:
    def requires(allowed: tuple[str, ...], action: str) -> Any:
        """A dependency: FastAPI resolves it before it validates the body, so a caller without a valid token
        learns nothing about what the body should hold, nor whether it parsed (entrypoints/limits.py)."""

        def authenticated(request: Request, authorization: str | None = Header(default=None)) -> Principal:
            token = _bearer(authorization)
            with runtime.db.transaction() as session:
                principal = repository.principal_by_token(session, token)
            authorised = access.authorise(principal, allowed, action)
            malformed = malformed_body(request.scope)
            if malformed is not None:
                raise MalformedBody(malformed)
            return authorised

        return Depends(authenticated)

    return requires


async def decide_on_job(
    runtime: RuntimeLike, governance: Governance, approver: Principal, job_id: str, body: ApprovalRequest
) -> tuple[DecisionOutcome, JobView]:
    """One approver's decision on a job, committed with its events; shared by the API and the console."""
    async with runtime.transaction(actor=approver.name, subject=job_id) as ctx:
        found = repository.require_job(ctx.db, job_id)
        ctx.trace = join_job_trace(found.traceparent) or ctx.trace  # the decision joins the job's trace
        rlhf = model_repository.rlhf_versions(ctx.db, found.spec)
        outcome = found.decide(approver, body.decision, comment=body.comment, reason=body.reason,
                               now=governance.now(), rlhf=rlhf)
        outbox.commit_job(ctx, found)
        view = JobView.of(found)
    return outcome, view


def create_app(
    runtime: RuntimeLike, governance: Governance, api_settings: RegistryAPISettings | None = None
) -> FastAPI:
    limits = api_settings or RegistryAPISettings()
    public_docs = limits.public_docs
    app = FastAPI(
        title="tunegate registry",
        version="1",
        docs_url="/docs" if public_docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if public_docs else None,
    )
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    requires = requirement(runtime)

    add_error_handlers(app)

    # Reads are plain functions: FastAPI runs them in its threadpool, off the loop the bus consumers share.
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        with runtime.db.transaction() as session:
            repository.job_exists(session, "")
        return {"status": "ok"}

    if not public_docs:

        @app.get("/openapi.json", include_in_schema=False)
        def openapi(
            _: Principal = requires(
                access.READ_JOBS + access.SUBMIT + access.READ_PRINCIPALS, "reading the API schema"
            ),
        ) -> dict[str, Any]:
            return app.openapi()

    # ------------------------------------------------------------ jobs

    @app.get("/jobs", response_model=list[JobSummary])
    def jobs(
        state: str | None = Query(default=None),
        limit: int = Query(default=200, ge=1, le=5000),
        principal: Principal = requires(access.READ_JOBS + access.SUBMIT, "listing jobs"),
    ) -> list[JobSummary]:
        if state is not None and state not in STATE_NAMES:
            raise InvalidRequest(f"state: unknown state {state!r} (known: {', '.join(sorted(STATE_NAMES))})")
        only = None if access.reads_every_job(principal) else principal.name
        with runtime.db.transaction() as session:
            return [
                JobSummary.of(job) for job in repository.list_jobs(session, state=state, requester=only, limit=limit)
            ]

    @app.get("/jobs/{job_id}", response_model=JobView)
    def job(job_id: str, principal: Principal = requires(access.READ_JOBS + access.SUBMIT, "reading a job")) -> JobView:
        with runtime.db.transaction() as session:
            found = repository.require_job(session, job_id)
        access.check_reads_job(principal, job_id, found.requester)
        return JobView.of(found)

    @app.post("/jobs/{job_id}/approvals", response_model=ApprovalResult)
    async def approvals(
        job_id: str, body: ApprovalRequest, approver: Principal = requires(access.DECIDE, "deciding on a job")
    ) -> ApprovalResult | JSONResponse:
        outcome, view = await decide_on_job(runtime, governance, approver, job_id, body)
        if outcome.expired:
            # The expiry itself is committed (and announced); the decision is refused.
            return error_response(
                409,
                "approval_expired",
                f"job {job_id}: the approval window closed at {view.approval_expires_at}; the job is now expired",
            )
        return ApprovalResult(
            job_id=job_id,
            decision=outcome.decision,
            approver=outcome.approver,
            state=view.state,
            approvals_so_far=outcome.approvals_so_far,
            required_approvals=outcome.required_approvals,
            override=outcome.override,
            training_requested=outcome.training_requested,
            job=view,
        )

    @app.post("/jobs/{job_id}/cancel", response_model=CancelResult)
    async def cancel(
        job_id: str, body: CancelRequest, principal: Principal = requires(access.SUBMIT, "cancelling a job")
    ) -> CancelResult:
        async with runtime.transaction(actor=principal.name, subject=job_id) as ctx:
            found = repository.require_job(ctx.db, job_id)
            ctx.trace = join_job_trace(found.traceparent) or ctx.trace
            ended = found.cancel(principal, reason=body.reason, now=governance.now())
            outbox.commit_job(ctx, found)
            view = JobView.of(found)
        return CancelResult(job_id=job_id, state=view.state, training_cancel_requested=not ended, job=view)

    # ------------------------------------------------------------ evaluations

    @app.get("/jobs/{job_id}/evaluations", response_model=list[EvaluationView])
    def evaluations(
        job_id: str, principal: Principal = requires(access.READ_JOBS + access.SUBMIT, "reading a job")
    ) -> list[EvaluationView]:
        with runtime.db.transaction() as session:
            found = repository.require_job(session, job_id)
        access.check_reads_job(principal, job_id, found.requester)
        return [EvaluationView.of(run) for run in reversed(found.evaluations)]  # newest first

    @app.post("/jobs/{job_id}/evaluations", response_model=EvaluationRequestView, status_code=202)
    async def request_evaluation(
        job_id: str,
        body: EvaluationRunRequest,
        principal: Principal = requires(access.REQUEST_EVALUATION, "asking for an evaluation"),
    ) -> EvaluationRequestView:
        async with runtime.transaction(actor=principal.name, subject=job_id) as ctx:
            found = repository.require_job(ctx.db, job_id)
            ctx.trace = join_job_trace(found.traceparent) or ctx.trace
            request = found.request_evaluation(
                principal,
                suites=body.suites,
                reason=body.reason,
                known_suites=governance.evaluation_suites,
                now=governance.now(),
            )
            outbox.commit_job(ctx, found)
            accepted = EvaluationRequestView.of(found, request)
        return accepted

    add_model_routes(app, runtime, governance, requires)
    add_api_key_routes(app, runtime, governance, requires)
    add_erasure_routes(app, runtime, governance, requires)
    add_incident_routes(app, runtime, governance, requires)
    from services.registry.console.app import create_console  # imported here: the console imports this module

    app.mount("/console", create_console(runtime, governance, limits))

    # ------------------------------------------------------------ principals

    @app.get("/principals", response_model=list[PrincipalView])
    def principals(_: Principal = requires(access.READ_PRINCIPALS, "listing principals")) -> list[PrincipalView]:
        with runtime.db.transaction() as session:
            return [PrincipalView.of(p) for p in repository.list_principals(session)]

    @app.post("/principals", response_model=PrincipalCredentials, status_code=201)
    async def create_principal(
        body: PrincipalCreate, admin: Principal = requires(access.ADMINISTER, "creating a principal")
    ) -> PrincipalCredentials:
        now = governance.now()
        token = new_token()
        try:
            principal = Principal.create(
                name=body.name,
                roles=body.roles,
                token_sha256=hash_token(token),
                key=_signing_key(body.public_key, now),
                by=admin.name,
                now=now,
            )
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        async with runtime.transaction(actor=admin.name, subject=body.name) as ctx:
            outbox.commit_principal(ctx, principal, new=True)
        return PrincipalCredentials(principal=PrincipalView.of(principal), token=token)

    @app.post("/principals/{name}/rotate", response_model=PrincipalCredentials)
    async def rotate_principal(
        name: str,
        body: PrincipalRotate,
        admin: Principal = requires(access.ADMINISTER, "rotating a principal's credentials"),
    ) -> PrincipalCredentials:
        now = governance.now()
        token = new_token()
        key = _signing_key(body.public_key, now)
        async with runtime.transaction(actor=admin.name, subject=name) as ctx:
            principal = repository.require_principal(ctx.db, name)
            principal.rotate(token_sha256=hash_token(token), key=key, by=admin.name, now=now)
            outbox.commit_principal(ctx, principal)
        return PrincipalCredentials(principal=PrincipalView.of(principal), token=token)

    @app.post("/principals/{name}/revoke", response_model=PrincipalView)
    async def revoke_principal(
        name: str, body: PrincipalRevoke, admin: Principal = requires(access.ADMINISTER, "revoking a principal")
    ) -> PrincipalView:
        async with runtime.transaction(actor=admin.name, subject=name) as ctx:
            principal = repository.require_principal(ctx.db, name)
            principal.revoke(by=admin.name, reason=body.reason, now=governance.now())
            outbox.commit_principal(ctx, principal)
        return PrincipalView.of(principal)

    @app.post("/admin/bootstrap", response_model=PrincipalCredentials, status_code=201)
    async def bootstrap(body: AdminBootstrap) -> PrincipalCredentials:
        """The first admin, for whoever can read the one-time secret the registry wrote under its home."""
        now = governance.now()
        token = new_token()
        try:
            principal = Principal.create(
                name=body.name, roles=["admin"], token_sha256=hash_token(token), key=None, by="bootstrap", now=now
            )
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        async with runtime.transaction(actor="bootstrap", subject=body.name) as ctx:
            first_admin.consume_bootstrap(ctx.db, body.secret, by=body.name, now=now)
            outbox.commit_principal(ctx, principal, new=True)
        first_admin.close_bootstrap(runtime.settings)
        return PrincipalCredentials(principal=PrincipalView.of(principal), token=token)

    return app
