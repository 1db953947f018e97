"""The outbox's two hot statements for an entrypoint that records events at a high rate (the gateway's
audit record of every request): stage a batch of signed envelopes, and mark a batch published.

On SQLite they run on one DBAPI connection held for the process's life, as statements SQLAlchemy compiled
once for the same tables: SQLAlchemy's per-statement execution (pool checkout, transaction events, compiled
cache lookup, result handling) cost about 0.4 ms of the 0.5 ms a one-row commit took, and the gateway pays
that on every answer's path. The rows, the column types' own conversions (timestamps as SQLAlchemy writes
them, so the relay's `created_at < cutoff` compares like with like) and the transaction are the same as
InboxTables.stage / mark_published; other databases go through those as before."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, update

from shared.bus.inbox import InboxTables
from shared.events.envelope import Envelope
from shared.storage.db import Database, is_sqlite


class OutboxWriter:
    def __init__(self, db: Database, tables: InboxTables) -> None:
        self.db = db
        self.tables = tables
        self._direct = is_sqlite(db.engine)
        self._connection: Any = None
        self._lock = threading.Lock()  # one DBAPI connection: one statement at a time, whatever thread asks
        if self._direct:
            dialect = db.engine.dialect
            outbox = tables.outbox
            insert = outbox.insert().compile(dialect=dialect)
            self._insert_sql = insert.string
            self._insert_order = list(insert.positiontup or [])
            mark = update(outbox).where(outbox.c.event_id == bindparam("target")).values(
                published_at=bindparam("stamp")).compile(dialect=dialect)
            self._mark_sql = mark.string
            self._mark_order = list(mark.positiontup or [])
            self._convert: dict[str, Callable[[Any], Any]] = {}
            for column in outbox.c:
                processor = column.type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    self._convert[column.name] = processor
            stamp = outbox.c.published_at.type.dialect_impl(dialect).bind_processor(dialect)
            self._stamp: Callable[[Any], Any] = stamp if stamp is not None else (lambda value: value)

    def _raw(self) -> Any:
        if self._connection is None:
            # A pooled connection kept for good: the engine's connect hook has set WAL and the busy timeout.
            self._connection = self.db.engine.raw_connection()
        return self._connection

    def _run(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        with self._lock:
            connection = self._raw()
            try:
                cursor = connection.cursor()
                cursor.executemany(sql, rows)
                cursor.close()
                connection.commit()
            except BaseException:
                connection.rollback()
                raise

    def stage(self, envelopes: Sequence[Envelope]) -> None:
        """Commit outbox rows for events no handler caused (causation None), in one transaction."""
        if not envelopes:
            return
        if not self._direct:
            with self.db.engine.begin() as connection:
                self.tables.stage(connection, list(envelopes), causation_id=None)
            return
        now = datetime.now(UTC)
        rows = []
        for position, event in enumerate(envelopes):
            values = {"event_id": event.event_id, "causation_id": None, "position": position, "stream": event.stream,
                      "body": event.to_wire(), "created_at": now, "published_at": None}
            rows.append(tuple(self._convert[name](values[name]) if name in self._convert else values[name]
                              for name in self._insert_order))
        self._run(self._insert_sql, rows)

    def mark_published(self, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        if not self._direct:
            with self.db.engine.begin() as connection:
                self.tables.mark_published(connection, list(event_ids))
            return
        stamp = self._stamp(datetime.now(UTC))
        rows = [tuple(stamp if name == "stamp" else event_id for name in self._mark_order) for event_id in event_ids]
        self._run(self._mark_sql, rows)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
