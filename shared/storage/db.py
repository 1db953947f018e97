"""SQLAlchemy engine and session factory shared by every service (each service owns its own tables)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


# The database cannot be reached or dropped the connection (PostgreSQL down or cut off, SQLite locked past its
# timeout): transient, so a request is answered 503 and a background round is retried, never a traceback.
# The classes SQLAlchemy raises for it; `database_unavailable` tells an outage from a statement error that
# SQLAlchemy files under the same class.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, DisconnectionError)

SQLITE_OUTAGES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_NOMEM",
                  "SQLITE_PROTOCOL", "SQLITE_READONLY")
"""SQLite result codes (and their extended forms, e.g. SQLITE_IOERR_WRITE) that say the database file cannot be
used right now: held by another writer, disk full, I/O failing, gone or read-only. Every other code under
OperationalError (SQLITE_ERROR: "no such table", a syntax error) is the statement's fault and stays so."""

POSTGRES_OUTAGE_CLASSES = ("08", "53", "57P", "58")
"""SQLSTATE prefixes of a PostgreSQL server that cannot serve: connection exceptions (08), insufficient
resources such as a full disk or too many connections (53), an operator or crash shutdown and "cannot
connect now" (57P), system I/O errors (58). A failure before any server answered has no SQLSTATE at all."""


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database is unreachable or unusable for now (retry later, nobody's fault), as
    opposed to a statement the database refused (a missing table, a deadlock victim: the caller's)."""
    if isinstance(exc, DisconnectionError | InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    sqlite_name = getattr(orig, "sqlite_errorname", None)
    if isinstance(sqlite_name, str):
        return sqlite_name.startswith(SQLITE_OUTAGES)
    if hasattr(orig, "sqlstate"):  # psycopg
        sqlstate = orig.sqlstate
        return sqlstate is None or str(sqlstate).startswith(POSTGRES_OUTAGE_CLASSES)
    return True  # a driver we do not know: its OperationalError is, by DB-API's definition, the database's


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use the psycopg 3 driver we ship."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


# One advisory-lock key for "tunegate schema creation" (first 8 bytes of its name's SHA-256, signed 64-bit).
_SCHEMA_LOCK_KEY = int.from_bytes(hashlib.sha256(b"tunegate.schema.create").digest()[:8], "big", signed=True)


def create_schema(engine: Engine, metadata: MetaData) -> None:
    """metadata.create_all, safe when replicas start at the same moment: create_all checks then creates, so
    two processes can both see a table missing and the second CREATE fails (on PostgreSQL a duplicate
    pg_type row). Holding a database-wide lock for the check and the create makes the later one see the
    tables. PostgreSQL: a transaction-level advisory lock; SQLite: BEGIN IMMEDIATE (the write lock)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        try:
            metadata.create_all(conn)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets readers (CLI, status) run while a service writes; NORMAL sync is durable under WAL.
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


class Database:
    """One engine plus a transactional session scope: commit on success, roll back on any error."""

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)

    @cached_property
    def _sessions(self) -> sessionmaker[Session]:
        # The ORM is imported on first use: readers on SQLAlchemy Core alone (the audit ledger, its CLI) skip it.
        from sqlalchemy.orm import sessionmaker

        return sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def new_session(self) -> Session:
        """A session whose commit the caller decides (the bus's unit of work commits after its own checks)."""
        return self._sessions()

    def dispose(self) -> None:
        self.engine.dispose()
