"""$TUNEGATE_HOME is 0700 and what tunegate writes in it 0600, whatever the umask of whoever started it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from shared.config import Settings
from shared.stack.redis_server import EmbeddedRedis
from shared.stack.supervisor import ProcessRecord, Supervisor
from shared.storage.db import Database
from shared.storage.private import PRIVATE_UMASK, open_private_append, private_file, restrict_umask


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The common default (022) makes new files world-readable: our code must not depend on the umask."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _world_or_group_readable(root: Path) -> list[str]:
    return [str(p) for p in [root, *root.rglob("*")] if _mode(p) & 0o077]


def test_home_and_its_folders_are_owner_only(tmp_path: Path, permissive_umask: None) -> None:
    os.chmod(tmp_path, 0o755)
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)  # an older install left it open
    settings = Settings(home=home)
    target = settings.path("training", "job-1", "run")
    assert _mode(home) == 0o700 and _mode(home / "training") == 0o700 and _mode(target.parent) == 0o700
    assert _mode(tmp_path) == 0o755  # the folder above the home is not ours to change


@pytest.mark.sqlite_only  # the modes of SQLite's own files: nothing of it exists on PostgreSQL
def test_sqlite_database_and_its_wal_files_are_0600(tmp_path: Path, permissive_umask: None) -> None:
    settings = Settings(home=tmp_path / "home")
    db = Database(settings.database_url_for("registry"))
    with db.transaction() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
    files = sorted((tmp_path / "home" / "db").iterdir())
    assert {f.name for f in files} >= {"registry.sqlite3", "registry.sqlite3-wal", "registry.sqlite3-shm"}
    assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
    db.dispose()


def test_embedded_redis_keeps_its_aof_owner_only(tmp_path: Path, permissive_umask: None) -> None:
    server = EmbeddedRedis(tmp_path / "home" / "redis")
    server.start()
    try:
        import redis

        client = redis.Redis.from_url(server.url)
        client.xadd("s", {"k": "v"})
        client.close()
    finally:
        server.stop()
    assert (tmp_path / "home" / "redis" / "appendonlydir").is_dir()
    assert _world_or_group_readable(tmp_path / "home" / "redis") == []


def test_supervisor_records_and_logs_are_0600(tmp_path: Path, permissive_umask: None) -> None:
    supervisor = Supervisor(Settings(home=tmp_path / "home"))
    supervisor._write_record(ProcessRecord("audit", 1, 0.0, ["x"], "log"))
    with open_private_append(Settings(home=tmp_path / "home").path("logs", "audit.log")) as log:
        log.write(b"line\n")
    assert _world_or_group_readable(tmp_path / "home") == []


def test_existing_files_are_tightened_and_the_process_umask_restricted(tmp_path: Path) -> None:
    loose = tmp_path / "loose.sqlite3"
    loose.write_text("")
    os.chmod(loose, 0o644)
    assert _mode(private_file(loose)) == 0o600
    previous = restrict_umask()
    try:
        assert os.umask(PRIVATE_UMASK) == PRIVATE_UMASK
        fresh = tmp_path / "fresh.txt"
        fresh.write_text("x")
        assert _mode(fresh) == 0o600
    finally:
        os.umask(previous)
