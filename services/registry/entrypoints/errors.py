"""How the registry API answers what went wrong: one OpenAI-like JSON shape ({"error", "detail"}), a status per
domain error, 409 for a concurrent change, 503 while the database is unreachable, a logged 500 for a statement
the database refused; never a traceback in the answer."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.registry.domain.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    MalformedBody,
    NotFound,
    RegistryError,
    Unauthenticated,
)
from services.registry.domain.model_states import InvalidModelTransition
from services.registry.domain.states import InvalidTransition
from services.registry.entrypoints.limits import malformed_body
from shared.storage.db import DATABASE_UNAVAILABLE, database_unavailable
from shared.validation import describe_validation_error

log = logging.getLogger("tunegate.registry.http")

DATABASE_UNAVAILABLE_DETAIL = (
    "the registry's database is unreachable right now; the request may not have been recorded: read the state "
    "again and retry"
)

STATUS: dict[type[RegistryError], int] = {
    InvalidRequest: 422,
    MalformedBody: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
}


MAX_DETAIL_CHARS = 1_000
"""An error's detail is cut here: details quote what was asked for (an unknown id, a bad value), and a 60 KB
id must not come back as a 60 KB answer."""


def error_response(status: int, error: str, detail: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(detail, str) and len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
    return JSONResponse(status_code=status, content={"error": error, "detail": detail}, headers=headers)


def unstorable(exc: DataError) -> str:
    """What the database refused to store (a value too long for its column, out of range, not text), in its own
    words: the client's input, so a 422, not a 500."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else "refused by the database"
    return f"a value in this request cannot be stored: {reason[:300]}"


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RegistryError)
    async def _registry_error(_: Request, exc: RegistryError) -> JSONResponse:
        return error_response(STATUS.get(type(exc), 400), exc.error, str(exc))

    @app.exception_handler(InvalidTransition)
    async def _invalid_transition(_: Request, exc: InvalidTransition) -> JSONResponse:
        return error_response(409, "invalid_transition", str(exc))

    @app.exception_handler(InvalidModelTransition)
    async def _invalid_model_transition(_: Request, exc: InvalidModelTransition) -> JSONResponse:
        return error_response(409, "invalid_transition", str(exc))

    @app.exception_handler(StaleDataError)
    async def _stale(_: Request, exc: StaleDataError) -> JSONResponse:
        return error_response(
            409, "concurrent_update",
            "the record changed while this request ran (another request or replica changed it first); read it "
            "again and retry"
        )

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, exc: DataError) -> JSONResponse:
        return error_response(422, "invalid_request", unstorable(exc))

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        return error_response(409, "conflict", "a concurrent request recorded the same change; read it again")

    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        if not database_unavailable(exc):  # a statement the database refused: ours to fix, not worth a retry
            log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
            return error_response(500, "internal_error", "the registry failed to answer this request; it is logged")
        response = error_response(503, "database_unavailable", DATABASE_UNAVAILABLE_DETAIL)
        response.headers["retry-after"] = "2"
        return response

    for kind in DATABASE_UNAVAILABLE:
        app.add_exception_handler(kind, _database_unavailable)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        malformed = malformed_body(request.scope)
        if malformed is not None:  # a route without a token: its stand-in body failed validation, as it must
            return error_response(400, MalformedBody.error, malformed)
        return error_response(422, "invalid_request", describe_validation_error(exc, root="request"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        return error_response(status, "payload_too_large" if status == 413 else "http_error", exc.detail)
