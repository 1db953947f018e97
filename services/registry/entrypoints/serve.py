"""Serving the registry API inside the registry's own process (a background task of the service): open the
first-admin bootstrap, run uvicorn on the configured host and port, publish the URL it listens on."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn

from services.registry.adapters import first_admin
from services.registry.domain.governance import Governance
from services.registry.entrypoints.http import RuntimeLike, create_app
from shared.config import Settings

log = logging.getLogger("tunegate.registry.http")


def url_file(settings: Settings) -> Path:
    return settings.path("run", "registry.url")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def serve(runtime: RuntimeLike, governance: Governance) -> None:
    """Background task: open the first-admin bootstrap if no admin exists, run the API on
    registry_host:registry_port (0 = a free port) and publish its URL in $TUNEGATE_HOME/run/registry.url
    once it listens; remove the file on the way out."""
    settings = runtime.settings
    first_admin.open_bootstrap(runtime.db, settings, governance.now())
    config = uvicorn.Config(
        create_app(runtime, governance),
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
