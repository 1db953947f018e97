"""Registry test fixtures (helpers live in registry_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.registry.adapters.tables import METADATA
from services.registry.bootstrap import build_governance
from services.registry.entrypoints.http import create_app
from services.registry.handlers import build_handlers
from shared.config import Settings
from shared.storage.artifacts import ArtifactStore
from shared.storage.db import Database
from tests.registry.registry_support import Clock, FakeRuntime, World


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = Settings(home=tmp_path / "home", approval_ttl_s=3600.0)
    db = Database(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    METADATA.create_all(db.engine)
    clock = Clock()
    governance = replace(build_governance(settings), clock=clock)
    runtime = FakeRuntime(settings=settings, db=db)
    handlers = build_handlers(governance, ArtifactStore(settings.home_dir / "artifacts"))
    with TestClient(create_app(runtime, governance)) as client:
        yield World(settings, runtime, governance, clock, handlers, client)
    db.dispose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
