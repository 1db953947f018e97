"""The web console: server-rendered pages (Jinja2) under /console of the registry's HTTP API.

Server-rendered because deployments are often offline and audited: no build step, no bundler, no CDN, every
byte served by the registry, and every page works without JavaScript except the in-browser proof check
(static/verify.js), which needs WebCrypto. Who may see or do what is the API's rule (domain/access.py),
applied through the same `access.authorise`; only how the principal is found differs: a signed session
cookie (sessions.py) instead of a bearer header, and a CSRF token on every form."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.exc import DataError
from sqlalchemy.orm.exc import StaleDataError

from services.registry.adapters import repository
from services.registry.console.sessions import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleSession,
    SessionCodec,
    SessionExpired,
    SessionInvalid,
)
from services.registry.domain import access
from services.registry.domain.errors import Forbidden, InvalidRequest, RegistryError, Unauthenticated
from services.registry.domain.governance import Governance
from services.registry.domain.model_states import InvalidModelTransition
from services.registry.domain.principals import ROLES, Principal, hash_token
from services.registry.domain.states import InvalidTransition
from services.registry.entrypoints.errors import DATABASE_UNAVAILABLE_DETAIL, STATUS, unstorable
from services.registry.settings import RegistryAPISettings
from shared.ids import UnsafeIdError
from shared.storage.db import DATABASE_UNAVAILABLE
from shared.storage.db import database_unavailable as is_database_unavailable
from shared.validation import describe_validation_error

log = logging.getLogger("tunegate.registry.console")

HERE = Path(__file__).parent
MAX_FORM_FIELDS = 20
MAX_TOKEN_CHARS = 512
# The console's pages hold no inline script or style, so the policy can forbid both outright.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class CsrfFailed(Forbidden):
    error = "csrf_failed"


@dataclass(frozen=True)
class Viewer:
    """The logged-in principal and what its forms must carry."""

    principal: Principal
    session: ConsoleSession
    csrf: str

    def holds(self, roles: tuple[str, ...]) -> bool:
        return self.principal.has_any_role(roles)


@dataclass
class Console:
    """What the route modules share: the runtime, governance, templates, the session codec."""

    runtime: Any
    governance: Governance
    settings: RegistryAPISettings
    codec: SessionCodec
    templates: Jinja2Templates

    def page(self, request: Request, name: str, viewer: Viewer | None, status: int = 200, **context: Any) -> Response:
        return self.templates.TemplateResponse(
            request,
            name,
            {
                "viewer": viewer,
                "roles": list(viewer.principal.roles) if viewer else [],
                "reads_ledger": viewer is not None and viewer.holds(access.READ_LEDGER),
                "reads_evidence": viewer is not None and viewer.holds(access.READ_EVIDENCE),
                "reads_incidents": viewer is not None and viewer.holds(access.READ_INCIDENTS),
                "reads_erasures": viewer is not None and viewer.holds(access.READ_ERASURES),
                **context,
            },
            status_code=status,
        )

    def viewer(self, request: Request) -> Viewer:
        session = self.codec.read(request.cookies.get(SESSION_COOKIE), now=time.time())
        with self.runtime.db.transaction() as db:
            principal = repository.load_principal(db, session.principal)
            ended = repository.logged_out(db, session.session_id)
        if ended:
            raise SessionInvalid("this console session was ended by logging out: log in again")
        if principal is not None and principal.token_sha256 != session.token_sha256:
            raise Unauthenticated(f"the token of {session.principal!r} was rotated since you logged in: log in again")
        principal = access.authorise(principal, ROLES, "using the console")  # unknown or revoked: 401
        return Viewer(principal, session, self.codec.csrf_token(session))

    def requires(self, allowed: tuple[str, ...], action: str) -> Any:
        """A dependency: the viewer, if one of `allowed` roles is held (403 page otherwise), exactly as the API."""

        def dependency(request: Request) -> Viewer:
            viewer = self.viewer(request)
            access.authorise(viewer.principal, allowed, action)
            return viewer

        return Depends(dependency)

    async def form(self, request: Request, viewer: Viewer | None) -> dict[str, str]:
        """The urlencoded form (body size capped by the API's BodyLimit), CSRF-checked when a session exists."""
        try:
            fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
        except ValueError:
            raise InvalidRequest(f"the form has more than {MAX_FORM_FIELDS} fields") from None
        form = {name: values[-1] for name, values in fields.items()}
        if viewer is not None and not self.codec.csrf_ok(viewer.session, form.get("csrf")):
            raise CsrfFailed("the form's CSRF token is missing or belongs to another session: reload the page")
        return form

    def cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/console",
            httponly=True,
            samesite="strict",
            secure=self.settings.console_secure_cookies,
        )


ERROR_STATUS: dict[type[Exception], tuple[int, str]] = {
    SessionExpired: (401, "Session expired"),
    SessionInvalid: (401, "Not logged in"),
    CsrfFailed: (403, "Request refused (CSRF)"),
    InvalidTransition: (409, "Not possible in this state"),
    InvalidModelTransition: (409, "Not possible in this state"),
    StaleDataError: (409, "Changed meanwhile"),
    UnsafeIdError: (422, "Invalid input"),
}
REGISTRY_TITLES = {401: "Not logged in", 403: "Not allowed", 404: "Not found", 409: "Conflict", 422: "Invalid input"}


def _error_handlers(app: FastAPI, console: Console) -> None:
    def render(request: Request, status: int, title: str, detail: str) -> Response:
        response = console.page(request, "error.html", None, status=status, title=title, detail=detail)
        if status == 401:
            response.delete_cookie(SESSION_COOKIE, path="/console")
        return response

    async def known(request: Request, exc: Exception) -> Response:
        if isinstance(exc, SessionInvalid) and SESSION_COOKIE not in request.cookies and request.method == "GET":
            wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/console/login?next={quote(wanted, safe='/')}", status_code=303)
        for kind, (status, title) in ERROR_STATUS.items():
            if isinstance(exc, kind):
                stale = "it changed while you decided (someone else acted first); reload it"
                detail = stale if kind is StaleDataError else str(exc)
                return render(request, status, title, detail)
        status = STATUS.get(type(exc), 400) if isinstance(exc, RegistryError) else 400
        return render(request, status, REGISTRY_TITLES.get(status, "Refused"), str(exc))

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ValidationError)
        return render(request, 422, "Invalid input", describe_validation_error(exc, root="form"))

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        if isinstance(exc, DataError):
            return render(request, 422, "Invalid input", unstorable(exc))
        if not is_database_unavailable(exc):  # a statement the database refused: ours to fix
            log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
            return render(request, 500, "Internal error", "the console failed to answer this request; it is logged")
        response = render(request, 503, "Database unavailable", DATABASE_UNAVAILABLE_DETAIL)
        response.headers["retry-after"] = "2"
        return response

    for kind in (*ERROR_STATUS, RegistryError):
        app.add_exception_handler(kind, known)
    for kind in (*DATABASE_UNAVAILABLE, DataError):
        app.add_exception_handler(kind, database_unavailable)
    app.add_exception_handler(ValidationError, invalid)


def _security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never an open redirect to another site."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/jobs"


def create_console(runtime: Any, governance: Governance, settings: RegistryAPISettings) -> FastAPI:
    from services.registry.console import audit_pages, governance_pages, job_pages, model_pages

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console = Console(
        runtime,
        governance,
        settings,
        SessionCodec.for_home(runtime.settings),
        Jinja2Templates(directory=HERE / "templates"),
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _error_handlers(app, console)
    _security_headers(app)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/console/jobs", status_code=303)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str | None = None) -> Response:
        cookie, nonce = console.codec.login_nonce()
        response = console.page(request, "login.html", None, nonce=nonce, next=_safe_next(next))
        console.cookie(response, LOGIN_COOKIE, cookie, max_age=3600)
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await console.form(request, None)
        if not console.codec.login_nonce_ok(request.cookies.get(LOGIN_COOKIE), form.get("nonce")):
            raise CsrfFailed("the login form expired or was not served by this console: reload it and log in again")
        token = form.get("token", "").strip()
        if not token:
            raise Unauthenticated("enter your principal token")
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated(f"token not recognised (longer than {MAX_TOKEN_CHARS} characters)")
        with runtime.db.transaction() as db:
            principal = repository.principal_by_token(db, token)
        principal = access.authorise(principal, ROLES, "using the console")
        cookie, _ = console.codec.issue(
            principal.name, hash_token(token), now=time.time(), ttl_s=settings.console_session_ttl_s
        )
        response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
        console.cookie(response, SESSION_COOKIE, cookie, max_age=settings.console_session_ttl_s)
        response.delete_cookie(LOGIN_COOKIE, path="/console")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        viewer = console.viewer(request)
        await console.form(request, viewer)
        with console.runtime.db.transaction() as db:  # the cookie stops working here, not only in this browser
            repository.record_logout(db, viewer.session.session_id, expires_at=viewer.session.expires_at,
                                     now=time.time())
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/console")
        return response

    job_pages.add_routes(app, console)
    model_pages.add_routes(app, console)
    governance_pages.add_routes(app, console)
    audit_pages.add_routes(app, console)
    return app
