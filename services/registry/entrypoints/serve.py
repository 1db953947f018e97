"""Serving the registry API inside the registry's own process (a background task of the service): open the
first-admin bootstrap, then serve the app (shared/http_serving.py) and publish its URL."""

from __future__ import annotations

from pathlib import Path

from services.registry.adapters import first_admin
from services.registry.domain.governance import Governance
from services.registry.entrypoints.http import RuntimeLike, create_app
from shared.config import Settings
from shared.http_serving import serve_app


def url_file(settings: Settings) -> Path:
    return settings.path("run", "registry.url")


async def serve(runtime: RuntimeLike, governance: Governance) -> None:
    """Background task: open the first-admin bootstrap if no admin exists, run the API on
    registry_host:registry_port (0 = a free port) and publish its URL in $TUNEGATE_HOME/run/registry.url
    once it listens; remove the file on the way out."""
    settings = runtime.settings
    first_admin.open_bootstrap(runtime.db, settings, governance.now())
    await serve_app(
        create_app(runtime, governance), host=settings.registry_host, port=settings.registry_port,
        url_file=url_file(settings), log_level=settings.log_level, what="registry API",
    )
