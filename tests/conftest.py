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


@pytest.fixture(autouse=True)
def data_roots(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tests read datasets only from pytest's own temporary folders: that is their declared data root (service
    processes they start inherit it through the environment)."""
    root = tmp_path_factory.getbasetemp().resolve()
    monkeypatch.setenv("TUNEGATE_DATA_ROOTS", str(root))
    return root


@pytest.fixture
def tunegate_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("TUNEGATE_HOME", str(home))
    monkeypatch.delenv("TUNEGATE_DATABASE_URL", raising=False)
    return home


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
