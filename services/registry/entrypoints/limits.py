"""Request bodies capped before they are read: a declared Content-Length over the cap is refused without
touching the body, and a body sent without one (chunked) is counted as it arrives and cut at the cap. The
body is read whole here (at most the cap) and handed on afterwards, so every refusal happens before any
route or middleware runs (one raised from inside the app used to reach the console's middleware wrapped in
an ExceptionGroup and end as a 500).

NUL characters are refused wherever a request carries them (path, query string, body: raw, as a JSON
escape, or percent-encoded in a form): PostgreSQL text cannot hold one, so it used to surface as a 500 from
the database, or be kept in a JSON column and break whatever read it next.

A body sent as JSON that does not parse is not refused here: that would tell a caller without a token how
the registry reads bodies (FastAPI parses the body before it runs the dependency that authenticates). Its
precise fault (where the syntax breaks, nesting too deep, an integer too long: shared/json_input.py) is kept
in the request's state and the route sees a stand-in body that no route's body model accepts; the
authenticating dependency then refuses it as a 400 once the token is good, and a route without a token
reports it from its failed validation (entrypoints/errors.py)."""

from __future__ import annotations

import email.message
import re
from typing import Any

from starlette.responses import JSONResponse

from shared.json_input import parse_json

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyLimit:
    """Pure ASGI middleware; `max_bytes` from RegistryAPISettings.max_body_bytes."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await _refuse(scope, receive, send, 400, "bad_request", "Content-Length is not a non-negative integer")
            return
        if declared is not None and declared > self.max_bytes:
            await _refuse(
                scope,
                receive,
                send,
                413,
                "payload_too_large",
                f"request body of {declared} bytes is larger than the registry's limit of {self.max_bytes} bytes",
            )
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away before sending its body: nobody to answer
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await _refuse(scope, receive, send, 413, "payload_too_large",
                              f"request body larger than {self.max_bytes} bytes (the registry's limit)")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        where = nul_in(scope, body)
        if where is not None:
            await _refuse(scope, receive, send, 400, "invalid_request",
                          f"the request's {where} contains a NUL character (\\u0000), which no field accepts")
            return
        fault = json_fault(scope, body)
        if fault is not None:
            scope.setdefault("state", {})[MALFORMED_BODY] = fault
            body = STAND_IN_BODY
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: the client's disconnect, when it comes
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""A JSON \\u0000 escape, not one whose backslash is itself escaped (an even run of backslashes before it)."""


def nul_in(scope: Scope, body: bytes) -> str | None:
    """Where a request carries a NUL character ("path", "query string", "body"), or None."""
    if "\x00" in scope.get("path", ""):
        return "path"
    query = scope.get("query_string", b"")
    if b"\x00" in query or b"%00" in query:
        return "query string"
    if b"\x00" in body:
        return "body"
    form = any(name.lower() == b"content-type" and value.lower().startswith(b"application/x-www-form-urlencoded")
               for name, value in scope.get("headers", []))
    if (b"%00" in body) if form else bool(_JSON_NUL.search(body)):
        return "body"
    return None


MALFORMED_BODY = "tunegate_malformed_body"
"""The key in the request's state (scope["state"]) under which a malformed JSON body's fault waits."""
STAND_IN_BODY = b"[]"
"""What a route sees instead of a malformed JSON body: valid JSON that every body model refuses (they are all
objects), so no route ever runs on it, while FastAPI's own parse succeeds and the token is checked first."""


def json_fault(scope: Scope, body: bytes) -> str | None:
    """Why a body FastAPI would parse as JSON does not parse, or None. FastAPI parses a non-empty body as JSON
    when it has no content type or an application/json or application/*+json one; the same test here."""
    if not body:
        return None
    content_type = next((value.decode("latin-1") for name, value in scope.get("headers", [])
                         if name.lower() == b"content-type"), None)
    if content_type:
        parsed = email.message.Message()
        parsed["content-type"] = content_type
        subtype = parsed.get_content_subtype()
        if parsed.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
            return None
    try:
        parse_json(body)
    except UnicodeDecodeError as exc:
        return f"the request body is not UTF-8 text: byte {exc.start} cannot be decoded"
    except ValueError as exc:  # JSONDecodeError, its too-deep and too-long kinds included
        return f"the request body is not valid JSON: {exc}"
    return None


def malformed_body(scope: Scope) -> str | None:
    """The fault `BodyLimit` found in this request's JSON body, or None."""
    state = scope.get("state")
    return state.get(MALFORMED_BODY) if isinstance(state, dict) else None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return None


async def _refuse(scope: Scope, receive: Any, send: Any, status: int, error: str, detail: str) -> None:
    # Connection: close, so the client does not go on sending the body it announced.
    response = JSONResponse({"error": error, "detail": detail}, status_code=status, headers={"Connection": "close"})
    await response(scope, receive, send)
