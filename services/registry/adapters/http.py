"""The registry HTTP API: job queries and the approval gate. JSON errors everywhere:
{"error": <code>, "detail": <what, where, why>}.

Reads use short transactions on the registry database; approvals write through
`runtime.transaction(actor=principal, subject=job_id)`, so the decision, the job's new state and the
events it causes (published after commit) are one unit."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.registry.adapters import repository
from services.registry.domain.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    RegistryError,
    Unauthenticated,
)
from services.registry.domain.states import STATE_NAMES, InvalidTransition
from services.registry.schemas import ApprovalRequest, ApprovalResult, JobSummary, JobView
from services.registry.workflow import RegistryCore
from shared.bus.context import HandlerContext
from shared.config import Settings
from shared.storage.db import Database
from shared.validation import describe_validation_error

log = logging.getLogger("tunegate.registry.http")

STATUS: dict[type[RegistryError], int] = {
    InvalidRequest: 422,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
}


class RuntimeLike(Protocol):
    """The slice of ServiceRuntime the API needs (tests provide a small fake)."""

    settings: Settings
    db: Database

    def transaction(self, *, actor: str, subject: str | None = None) -> AbstractAsyncContextManager[HandlerContext]: ...


def _error(status: int, error: str, detail: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(status_code=status, content={"error": error, "detail": detail}, headers=headers)


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("Authorization header missing: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization header must be 'Bearer <token>'")
    return token.strip()


def create_app(runtime: RuntimeLike, core: RegistryCore | None = None) -> FastAPI:
    from services.registry.bootstrap import build_core

    registry = core or build_core(runtime.settings)
    app = FastAPI(title="tunegate registry", version="1")

    @app.exception_handler(RegistryError)
    async def _registry_error(_: Request, exc: RegistryError) -> JSONResponse:
        return _error(STATUS.get(type(exc), 400), exc.error, str(exc))

    @app.exception_handler(InvalidTransition)
    async def _invalid_transition(_: Request, exc: InvalidTransition) -> JSONResponse:
        return _error(409, "invalid_transition", str(exc))

    @app.exception_handler(StaleDataError)
    async def _stale(_: Request, exc: StaleDataError) -> JSONResponse:
        return _error(409, "concurrent_update", "the job changed while this request ran; read it again and retry")

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        return _error(409, "conflict", "a concurrent request recorded the same decision; read the job again")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", describe_validation_error(exc, root="request"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", exc.detail)

    # Reads are plain functions: FastAPI runs them in its threadpool, off the loop the bus consumers share.
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        with runtime.db.transaction() as session:
            repository.list_jobs(session, limit=1)
        return {"status": "ok"}

    @app.get("/jobs", response_model=list[JobSummary])
    def jobs(
        state: str | None = Query(default=None), limit: int = Query(default=200, ge=1, le=5000)
    ) -> list[JobSummary]:
        if state is not None and state not in STATE_NAMES:
            raise InvalidRequest(f"state: unknown state {state!r} (known: {', '.join(sorted(STATE_NAMES))})")
        with runtime.db.transaction() as session:
            return [JobSummary.of(row) for row in repository.list_jobs(session, state=state, limit=limit)]

    @app.get("/jobs/{job_id}", response_model=JobView)
    def job(job_id: str) -> JobView:
        with runtime.db.transaction() as session:
            return JobView.of(repository.require_job(session, job_id, with_history=True))

    @app.post("/jobs/{job_id}/approvals", response_model=ApprovalResult)
    async def approvals(
        job_id: str, body: ApprovalRequest, authorization: str | None = Header(default=None)
    ) -> ApprovalResult | JSONResponse:
        token = _bearer(authorization)
        with runtime.db.transaction() as session:
            principal = repository.principal_by_token(session, token)
            if principal is None:
                raise Unauthenticated("token not recognised (wrong, or never issued)")
            if principal.revoked_at is not None:
                raise Unauthenticated(f"token of principal {principal.name!r} was revoked")
            name = principal.name
        async with runtime.transaction(actor=name, subject=job_id) as ctx:
            row = repository.require_job(ctx.db, job_id, with_history=True)
            ctx.trace = row.traceparent or ctx.trace  # the decision joins the job's trace
            principal_row = repository.get_principal(ctx.db, name)
            assert principal_row is not None  # principals are revoked, never deleted
            outcome = registry.decide(ctx.db, ctx, row, principal_row, body)
            ctx.db.flush()
            view = JobView.of(row)
        if outcome.expired:
            # The expiry itself is committed (and announced); the decision is refused.
            return _error(
                409,
                "approval_expired",
                f"job {job_id}: the approval window closed at {view.approval_expires_at}; the job is now expired",
            )
        return ApprovalResult(
            job_id=job_id,
            decision=outcome.decision,
            approver=outcome.approver,
            state=outcome.state,
            approvals_so_far=outcome.approvals_so_far,
            required_approvals=outcome.required_approvals,
            override=outcome.override,
            training_requested=outcome.training_requested,
            job=view,
        )

    return app


# ---------------------------------------------------------------- serving inside the service process


def url_file(settings: Settings) -> Path:
    return settings.path("run", "registry.url")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def serve(runtime: RuntimeLike, core: RegistryCore | None = None) -> None:
    """Background task: run the API on registry_host:registry_port (0 = a free port) and publish its URL
    in $TUNEGATE_HOME/run/registry.url once it listens; remove the file on the way out."""
    settings = runtime.settings
    config = uvicorn.Config(
        create_app(runtime, core),
        host=settings.registry_host,
        port=settings.registry_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep the service's own (JSON) logging setup
        lifespan="off",
    )
    server = uvicorn.Server(config)
    # The service runtime owns signals; uvicorn must not replace its handlers.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    target = url_file(settings)
    try:
        async for port in _listening_port(server, task):
            host = settings.registry_host
            shown = f"[{host}]" if ":" in host else host
            _write_atomically(target, f"http://{shown}:{port}\n")
            log.info("registry API listening on http://%s:%s", shown, port)
        await task
    finally:
        server.should_exit = True
        if not task.done():
            try:
                await asyncio.wait_for(task, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
        if target.exists():
            target.unlink()


async def _listening_port(server: uvicorn.Server, task: asyncio.Task[None]) -> AsyncIterator[int]:
    while not server.started:
        if task.done():
            task.result()  # re-raise why it could not start (port taken...)
            raise RuntimeError("registry API stopped before it started listening")
        await asyncio.sleep(0.05)
    for srv in server.servers:
        for sock in srv.sockets:
            yield sock.getsockname()[1]
            return
    raise RuntimeError("registry API started without a listening socket")
