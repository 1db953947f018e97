"""The gateway's HTTP API, OpenAI-shaped: `POST /v1/chat/completions`, `POST /v1/completions`,
`GET /v1/models`, and `/healthz` (the only route without a key). Bodies are capped before they are read;
every refusal is an OpenAI error body with a precise message, never a traceback. What a request means is
decided in services/gateway/inference.py; this module only moves bytes."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway.entrypoints import openai_shapes as shapes
from services.gateway.errors import GatewayError
from services.gateway.inference import Gateway, Operation


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, headers=headers,
                    media_type="application/json")


def error_response(error: GatewayError, headers: dict[str, str] | None = None) -> Response:
    out = dict(headers or {})
    if error.retry_after is not None:
        out["retry-after"] = str(error.retry_after)
    if error.status == 401:
        out["www-authenticate"] = 'Bearer realm="tunegate"'
    body = shapes.error_body(error.message, type_=error.type, code=error.code, param=error.param)
    return _json(error.status, body, out)


async def read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise GatewayError(413, f"Request body exceeds the limit of {limit} bytes.", code="request_too_large",
                           audited=False)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GatewayError(413, f"Request body exceeds the limit of {limit} bytes.",
                               code="request_too_large", audited=False)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(title="tunegate gateway", docs_url=None, redoc_url=None, openapi_url=None)
    limit = gateway.settings.max_body_bytes

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = "not_found" if exc.status_code == 404 else "method_not_allowed" if exc.status_code == 405 else None
        message = "Unknown route." if exc.status_code == 404 else str(exc.detail)
        return _json(exc.status_code, shapes.error_body(message, type_="invalid_request_error", code=code))

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json(200, {"status": "ok"})

    async def infer(operation: Operation, request: Request) -> Response:
        try:
            raw = await read_capped(request, limit)
            answer = await gateway.answer(operation, raw, request.headers.get("authorization"),
                                          request.headers.get("traceparent"))
        except GatewayError as exc:
            return error_response(exc)
        if answer.stream is not None:
            headers = {**answer.headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
            return StreamingResponse(answer.stream, media_type="text/event-stream", headers=headers)
        assert answer.body is not None
        return _json(answer.status, answer.body, answer.headers)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await infer("chat", request)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await infer("text_completion", request)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        try:
            key = gateway.authenticate(request.headers.get("authorization"))
        except GatewayError as exc:
            return error_response(exc)
        return _json(200, {"object": "list", "data": gateway.models_for(key)})

    return app
