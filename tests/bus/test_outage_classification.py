"""Which handler failures are the infrastructure's (no delivery used up) and which are the event's."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg.errors
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from shared.bus.outcomes import is_outage
from shared.storage.db import database_unavailable


def _raised_from(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("the handler gave up") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize("error", [
    OperationalError("SELECT 1", {}, ConnectionRefusedError("connection to server failed")),
    RedisConnectionError("Connection closed by server."),
    ConnectionResetError("reset by peer"),
    ResponseError("MISCONF Errors writing to the AOF file: No space left on device"),
    _raised_from(RedisConnectionError("Error 111 connecting")),
])
def test_an_unreachable_database_or_redis_is_an_outage(error: BaseException) -> None:
    assert is_outage(error)


@pytest.mark.parametrize("error", [
    ValueError("poison pill"),
    FileNotFoundError("the dataset is gone"),  # an OSError, and the event's problem
    ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    KeyError("job_id"),
])
def test_the_events_own_failures_are_not(error: BaseException) -> None:
    assert not is_outage(error)


def test_an_outage_only_in_the_implicit_context_is_not_one() -> None:
    """An error raised while handling another (not `from` it) is judged on its own."""
    try:
        try:
            raise RedisConnectionError("down")
        except RedisConnectionError:
            raise ValueError("the handler's own bug") from None
    except ValueError as error:
        assert not is_outage(error)


def _failure(url: str, *statements: str, connect_args: dict[str, object] | None = None) -> OperationalError:
    """The OperationalError a real driver raises for the last of `statements`, as SQLAlchemy wraps it."""
    engine = create_engine(url, connect_args=connect_args or {})
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    except OperationalError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{statements[-1]!r} did not fail")


def test_sqlite_statements_it_refuses_are_not_outages(tmp_path: Path) -> None:
    error = _failure(f"sqlite:///{tmp_path / 'a.db'}", "SELECT * FROM no_such_table")
    assert "no such table" in str(error)
    assert not database_unavailable(error) and not is_outage(error)
    assert not is_outage(_failure(f"sqlite:///{tmp_path / 'a.db'}", "SELEKT 1"))


def test_sqlite_that_cannot_be_used_now_is_an_outage(tmp_path: Path) -> None:
    full = _failure(f"sqlite:///{tmp_path / 'full.db'}", "PRAGMA max_page_count=2",
                    "CREATE TABLE t (x TEXT)", "CREATE TABLE u (x TEXT)", "CREATE TABLE v (x TEXT)")
    assert "full" in str(full) and is_outage(full)
    missing = _failure(f"sqlite:///{tmp_path / 'gone' / 'x.db'}", "SELECT 1")
    assert "unable to open" in str(missing) and is_outage(missing)
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    try:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN EXCLUSIVE")
        locked = _failure(url, "SELECT * FROM t", connect_args={"timeout": 0})
        assert "locked" in str(locked) and is_outage(locked)
    finally:
        holder.close()


def test_postgresql_refusing_connections_is_an_outage_and_its_deadlock_is_not() -> None:
    refused = _failure("postgresql+psycopg://nobody@127.0.0.1:1/none", "SELECT 1")
    assert is_outage(refused)
    shutdown = OperationalError("SELECT 1", {}, psycopg.errors.AdminShutdown("terminating connection"))
    full = OperationalError("INSERT", {}, psycopg.errors.DiskFull("could not extend file"))
    assert is_outage(shutdown) and is_outage(full)
    deadlock = OperationalError("UPDATE", {}, psycopg.errors.DeadlockDetected("deadlock detected"))
    assert not is_outage(deadlock)  # a normal retry, counted like any other failure
