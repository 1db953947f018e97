"""Request bodies capped before they are read: a declared Content-Length over the cap is refused without
touching the body, and a body sent without one (chunked) is counted as it streams and cut at the cap."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyTooLarge(HTTPException):
    """Raised from inside the body stream; an HTTPException so FastAPI's body reader passes it on as is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes (the registry's limit)")


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
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _refuse(scope, receive, send, 413, "payload_too_large", str(exc.detail))


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
