"""Serving an HTTP app inside a service process (a background task of the service runtime): uvicorn on the
configured host and port (0 = a free port), the URL it listens on published atomically in a file under
`$TUNEGATE_HOME/run/` once it listens, removed on the way out. The registry API and the gateway use it.

Replicas sharing a home each publish their own `run/<name>-<host>-<pid>.url` (what a load balancer or a test
spreads requests over) and the shared `run/<name>.url` (any replica serves every request; the newest one
wins); a replica leaving removes the shared file only while it still names that replica."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn

from shared.heap import freeze_startup_heap

log = logging.getLogger("tunegate.http")


def replica_url_file(url_file: Path, host: str, pid: int) -> Path:
    """This process's own URL file beside the shared one (named as its bus consumer is)."""
    return url_file.with_name(f"{url_file.stem}-{host}-{pid}{url_file.suffix}")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: replicas write the same file
    tmp.write_text(text)
    os.replace(tmp, path)


HEADER_TIMEOUT_S = 10.0
"""How long a connection may take to send a request's headers (from when it opens, or from the end of its
previous response)."""


def header_deadline_protocol(timeout_s: float) -> type:
    """uvicorn's httptools protocol with a deadline for each request's headers. uvicorn has none: a connection
    that opens and sends nothing is never closed, and one that trickles header bytes keeps cancelling the
    keep-alive timer, so a few thousand slow clients hold every connection the server can have. (Bodies have
    their own deadline in the app: services/gateway/entrypoints/http.py read_capped.)"""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        _header_deadline: asyncio.TimerHandle | None = None

        def _arm_header_deadline(self) -> None:
            self._cancel_header_deadline()
            self._header_deadline = self.loop.call_later(timeout_s, self._headers_too_slow)

        def _cancel_header_deadline(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _headers_too_slow(self) -> None:
            self._header_deadline = None
            if self.cycle is None or self.cycle.response_complete:  # no request of its own in flight
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_deadline()

        def on_headers_complete(self) -> None:
            self._cancel_header_deadline()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():  # the next request on this connection gets the same deadline
                self._arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_deadline()
            super().connection_lost(exc)

    return HeaderDeadlineProtocol


async def serve_app(app: Any, *, host: str, port: int, url_file: Path, log_level: str, what: str,
                    header_timeout_s: float = HEADER_TIMEOUT_S) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=header_deadline_protocol(header_timeout_s),
        log_level=log_level.lower(),
        log_config=None,  # keep the service's own (JSON) logging setup
        lifespan="off",
        access_log=False,
        # No service reads the client address, so uvicorn's X-Forwarded-For rewriting is a layer of work on
        # every request for nothing (a few per cent of the gateway's CPU at 16 concurrent requests).
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    # The service runtime owns signals; uvicorn must not replace its handlers.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    freeze_startup_heap()  # the app and everything it loaded are built: keep full collections off requests
    task = asyncio.create_task(server.serve())
    own_file = replica_url_file(url_file, socket.gethostname(), os.getpid())
    published = ""
    try:
        async for bound in _listening_port(server, task, what):
            shown = f"[{host}]" if ":" in host else host
            published = f"http://{shown}:{bound}\n"
            _write_atomically(own_file, published)
            _write_atomically(url_file, published)
            log.info("%s listening on http://%s:%s", what, shown, bound)
        await task
    finally:
        server.should_exit = True
        if not task.done():
            try:
                await asyncio.wait_for(task, timeout=5)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
        own_file.unlink(missing_ok=True)
        try:
            if published and url_file.read_text() == published:
                url_file.unlink()
        except FileNotFoundError:
            pass


async def _listening_port(server: uvicorn.Server, task: asyncio.Task[None], what: str) -> AsyncIterator[int]:
    while not server.started:
        if task.done():
            task.result()  # re-raise why it could not start (port taken...)
            raise RuntimeError(f"{what} stopped before it started listening")
        await asyncio.sleep(0.05)
    for srv in server.servers:
        for sock in srv.sockets:
            yield sock.getsockname()[1]
            return
    raise RuntimeError(f"{what} started without a listening socket")
