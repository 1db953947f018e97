"""Fixtures shared by every test: an isolated TUNEGATE_HOME and a real Redis (never a mock)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from shared.config import Settings  # noqa: E402
from shared.models.bases import BaseModelInfo, resolve_base  # noqa: E402
from shared.stack.redis_server import EmbeddedRedis  # noqa: E402
from tests.support import postgres_schema, postgres_test_url  # noqa: E402


@pytest.fixture(autouse=True)
def data_roots(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tests read datasets only from pytest's own temporary folders: that is their declared data root (service
    processes they start inherit it through the environment)."""
    root = tmp_path_factory.getbasetemp().resolve()
    monkeypatch.setenv("TUNEGATE_DATA_ROOTS", str(root))
    return root


def on_postgres(request: pytest.FixtureRequest) -> bool:
    """Whether this test's services run on PostgreSQL: integration tests do when TUNEGATE_TEST_DATABASE_URL is
    set (instead of SQLite, not as well: the suite keeps its time), unless marked `sqlite_only`."""
    node = request.node
    return (
        postgres_test_url() is not None
        and node.get_closest_marker("integration") is not None
        and node.get_closest_marker("sqlite_only") is None
    )


@pytest.fixture
def tunegate_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Path]:
    """An empty TUNEGATE_HOME; its services' database is one SQLite file each under home/db, or, for integration
    tests when TUNEGATE_TEST_DATABASE_URL is set, a fresh PostgreSQL schema dropped after the test. Service
    processes inherit the choice through TUNEGATE_DATABASE_URL."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("TUNEGATE_HOME", str(home))
    base = postgres_test_url()
    if base is None or not on_postgres(request):
        monkeypatch.delenv("TUNEGATE_DATABASE_URL", raising=False)
        yield home
        return
    with postgres_schema(base, "test") as url:
        monkeypatch.setenv("TUNEGATE_DATABASE_URL", url)
        yield home


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A private redis-server with AOF (restartable, killable) under the test's tmp dir."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """TUNEGATE_TEST_REDIS_URL when given (flushed), else a private embedded Redis."""
    external = os.environ.get("TUNEGATE_TEST_REDIS_URL")
    if external:
        client = redis.Redis.from_url(external)
        client.flushdb()
        client.close()
        yield external
        return
    server = EmbeddedRedis(tmp_path / "redis-url")
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def models_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TUNEGATE_TEST_MODELS_HOME reuses a built `tiny` across sessions (handy while iterating)."""
    given = os.environ.get("TUNEGATE_TEST_MODELS_HOME")
    return Path(given) if given else tmp_path_factory.mktemp("models-home")


@pytest.fixture(scope="session")
def tiny_base(models_home: Path) -> BaseModelInfo:
    return resolve_base("tiny", Settings(home=models_home))
