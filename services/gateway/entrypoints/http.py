"""The gateway's HTTP API, OpenAI-shaped: `POST /v1/chat/completions`, `POST /v1/completions`,
`GET /v1/models`, and `/healthz` (the only route without a key). Bodies are capped before they are read;
every refusal is an OpenAI error body with a precise message, never a traceback. What a request means is
decided in services/gateway/inference.py; this module only moves bytes.

A plain ASGI application rather than FastAPI: four fixed routes need no router, dependency injection or
OpenAPI, and FastAPI's middleware stack was a sixth of the gateway's CPU per request, which is its added
latency."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from services.gateway.entrypoints import openai_shapes as shapes
from services.gateway.errors import GatewayError
from services.gateway.inference import Answer, Gateway, Operation

log = logging.getLogger("tunegate.gateway.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

OPERATIONS: dict[str, Operation] = {"/v1/chat/completions": "chat", "/v1/completions": "text_completion"}
ROUTES = {"/healthz": "GET", "/v1/models": "GET", **dict.fromkeys(OPERATIONS, "POST")}


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


async def _send(send: Send, status: int, body: bytes, headers: dict[str, str],
                content_type: bytes = b"application/json") -> None:
    raw = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: GatewayError) -> None:
    headers: dict[str, str] = dict(error.headers or {})
    if error.retry_after is not None:
        headers["retry-after"] = str(error.retry_after)
    if error.status == 401:
        headers["www-authenticate"] = 'Bearer realm="tunegate"'
    body = shapes.error_body(error.message, type_=error.type, code=error.code, param=error.param)
    await _send(send, error.status, _encode(body), headers)


async def read_capped(scope: Scope, receive: Receive, limit: int, timeout_s: float) -> bytes:
    """The request body, at most `limit` bytes and within `timeout_s` of the request's start: a client that
    announces a body and trickles it (or never sends it) would otherwise hold its connection open for ever,
    and a few thousand such clients every connection the server has."""
    too_large = GatewayError(413, f"Request body exceeds the limit of {limit} bytes.", code="request_too_large",
                             audited=False)
    declared = _header(scope, b"content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise GatewayError(400, "The client went away before sending its whole body.", audited=False)
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise GatewayError(408, f"The request body did not arrive within {timeout_s:g} s ({size} bytes came).",
                           code="request_timeout", audited=False, headers={"connection": "close"}) from None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


async def _stream(receive: Receive, send: Send, answer: Answer) -> None:
    """Send the chunks as they come. A client that hangs up stops the model (the server would otherwise
    drop the chunks silently while the model went on generating), and the stream's own cleanup records what
    the client was sent as an answer that ended with the client."""
    stream = answer.stream
    assert stream is not None
    headers = {**answer.headers, "cache-control": "no-cache", "x-accel-buffering": "no"}
    raw = [(b"content-type", b"text/event-stream; charset=utf-8")]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    gone = asyncio.Event()

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch_disconnect())
    try:
        await send({"type": "http.response.start", "status": answer.status, "headers": raw})
        async for piece in stream:
            if gone.is_set():
                break
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        if not gone.is_set():
            await send({"type": "http.response.body", "body": b""})
    finally:
        watcher.cancel()
        await stream.aclose()  # type: ignore[attr-defined]


def create_app(gateway: Gateway) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    limit = gateway.settings.max_body_bytes

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        expected = ROUTES.get(path)
        if expected is None:
            await send_error(send, GatewayError(404, f"Unknown route {path}.", code="not_found", audited=False))
            return
        if method != expected:
            await send_error(send, GatewayError(405, f"{path} accepts {expected}, not {method}.",
                                                code="method_not_allowed", audited=False))
            return
        try:
            if path == "/healthz":
                await _send(send, 200, b'{"status":"ok"}', {})
                return
            if path == "/v1/models":
                key = gateway.authenticate(_header(scope, b"authorization"))
                await _send(send, 200, _encode({"object": "list", "data": gateway.models_for(key)}), {})
                return
            raw = await read_capped(scope, receive, limit, gateway.settings.body_timeout_s)
            answer = await gateway.answer(OPERATIONS[path], raw, _header(scope, b"authorization"),
                                          _header(scope, b"traceparent"), _header(scope, b"content-type"))
            payload = _encode(answer.body) if answer.stream is None else b""
        except GatewayError as exc:
            await send_error(send, exc)
            return
        except Exception:  # a bug of ours: still an OpenAI error body, never the server's plain-text 500
            log.exception("%s %s failed", method, path)
            await send_error(send, GatewayError(500, "The gateway failed to answer this request; it is logged.",
                                                type="server_error", code="internal_error", audited=False))
            return
        if answer.stream is not None:
            await _stream(receive, send, answer)
            return
        await _send(send, answer.status, payload, answer.headers)

    return app
