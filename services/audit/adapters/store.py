"""LedgerStore: every read and write of the ledger tables (SQLAlchemy Core, SQLite or PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, func, inspect, select, text, tuple_

from services.audit.adapters.tables import entries, metadata, nodes, tree_heads
from services.audit.domain.entries import GENESIS_PREV_HASH, LedgerEntry
from services.audit.domain.tree_heads import SignedTreeHead
from services.audit.domain.verification import EntryRow
from shared.merkle import EMPTY_ROOT, fold_subtree_roots, perfect_subtrees, root_from_leaf_hashes
from shared.storage.db import Database, create_schema
from shared.validation import describe_validation_error

NODE_MIN_LEVEL = 8
# A stable advisory-lock key for "the audit ledger" (first 8 bytes of its name's SHA-256, signed 64-bit).
_PG_LOCK_KEY = int.from_bytes(hashlib.sha256(b"tunegate.audit.ledger").digest()[:8], "big", signed=True)

_ENTRY_COLUMNS = (
    entries.c.sequence,
    entries.c.event_id,
    entries.c.type,
    entries.c.producer,
    entries.c.actor,
    entries.c.subject,
    entries.c.occurred_at,
    entries.c.trace_id,
    entries.c.payload_sha256,
    entries.c.prev_hash,
    entries.c.signature_key_id,
    entries.c.signature_value,
    entries.c.entry_hash,
)
_IN_CHUNK = 500  # stays far below every driver's bound-parameter limit


class LedgerNotFound(LookupError):
    """The ledger tables do not exist at this database URL."""


class LedgerDamaged(RuntimeError):
    """A stored row is not what the ledger writes (a value of the wrong type or form, a leaf or node missing or
    of the wrong length, a tree head the entries cannot back): the ledger was altered or damaged. The message
    names the row. A RuntimeError, as the store raised for missing leaves and nodes before."""


class LedgerStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.engine = db.engine
        self.dialect = db.engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise RuntimeError(f"audit ledger supports SQLite and PostgreSQL, not {self.dialect!r}")

    # ------------------------------------------------------------------ schema

    def create_schema(self) -> None:
        """Create the tables and append-only triggers (idempotent)."""
        create_schema(self.engine, metadata)

    def has_schema(self) -> bool:
        return inspect(self.engine).has_table(entries.name)

    def require_schema(self) -> None:
        if not self.has_schema():
            raise LedgerNotFound(f"no audit ledger at {self.engine.url.render_as_string(hide_password=True)}")

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """One transaction holding the ledger's write lock, so concurrent appenders serialise and each
        re-reads the head after acquiring it. Commits on success, rolls back on any error."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                # pysqlite would begin lazily (DEFERRED) at the first INSERT; IMMEDIATE takes the write lock
                # before we read the head.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # ------------------------------------------------------------------ entries

    def head(self, conn: Connection) -> tuple[int, str]:
        """(tree size, entry_hash of the last entry or the genesis prev_hash)."""
        row = conn.execute(
            select(entries.c.sequence, entries.c.entry_hash).order_by(entries.c.sequence.desc()).limit(1)
        ).first()
        if row is None:
            return 0, GENESIS_PREV_HASH
        return int(row[0]) + 1, str(row[1])

    def existing_event_ids(self, conn: Connection, event_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(event_ids), _IN_CHUNK):
            chunk = event_ids[start : start + _IN_CHUNK]
            found.update(conn.execute(select(entries.c.event_id).where(entries.c.event_id.in_(chunk))).scalars().all())
        return found

    def insert_entry_rows(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            conn.execute(entries.insert(), list(rows))

    def insert_nodes(self, conn: Connection, new_nodes: Sequence[tuple[int, int, bytes]]) -> None:
        if new_nodes:
            conn.execute(nodes.insert(), [{"level": lv, "idx": ix, "hash": h} for lv, ix, h in new_nodes])

    def entry_by_event_id(self, conn: Connection, event_id: str) -> LedgerEntry | None:
        row = conn.execute(select(*_ENTRY_COLUMNS).where(entries.c.event_id == event_id)).first()
        return None if row is None else _entry(row)

    def entries_about(self, conn: Connection, subjects: Sequence[str], limit: int) -> list[LedgerEntry]:
        """Entries whose subject is one of `subjects` (a job, a model version, an incident), oldest first, at
        most `limit` (the registry's evidence packs read them)."""
        rows = conn.execute(
            select(*_ENTRY_COLUMNS).where(entries.c.subject.in_(list(subjects))).order_by(entries.c.sequence)
            .limit(limit)
        ).all()
        return [_entry(row) for row in rows]

    def tail(self, conn: Connection, count: int) -> list[LedgerEntry]:
        rows = conn.execute(select(*_ENTRY_COLUMNS).order_by(entries.c.sequence.desc()).limit(count)).all()
        return [_entry(row) for row in reversed(rows)]

    def search(
        self,
        conn: Connection,
        *,
        subject: str | None = None,
        type_: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 100,
    ) -> list[LedgerEntry]:
        """Newest first. `since`/`until` compare with occurred_at, an ISO 8601 UTC string, so a prefix such
        as '2026-01-05' works as a bound (until is exclusive)."""
        query = select(*_ENTRY_COLUMNS).order_by(entries.c.sequence.desc()).limit(limit)
        for column, value in ((entries.c.subject, subject), (entries.c.type, type_), (entries.c.actor, actor)):
            if value:
                query = query.where(column == value)
        if since:
            query = query.where(entries.c.occurred_at >= since)
        if until:
            query = query.where(entries.c.occurred_at < until)
        return [_entry(row) for row in conn.execute(query).all()]

    def iter_rows(self, conn: Connection, chunk: int = 20_000, below: int | None = None) -> Iterator[list[EntryRow]]:
        """Every entry in sequence order, chunk by chunk (keyset pagination: constant memory, and a gap
        in the sequence is seen rather than papered over)."""
        columns = ", ".join(column.name for column in (*_ENTRY_COLUMNS, entries.c.leaf_hash))
        after = -1
        bound = "" if below is None else f" AND sequence < {int(below)}"
        while True:
            # Raw DBAPI rows: the verifier unpacks plain tuples, ~2x faster than SQLAlchemy Row objects.
            rows: list[Any] = conn.exec_driver_sql(
                f"SELECT {columns} FROM {entries.name} WHERE sequence > {int(after)}{bound} "
                f"ORDER BY sequence LIMIT {int(chunk)}"
            ).fetchall()
            if not rows:
                return
            yield rows
            after = rows[-1][0]

    # ------------------------------------------------------------------ Merkle tree

    def leaf_hashes(self, conn: Connection, start: int, end: int) -> list[bytes]:
        rows = conn.execute(
            select(entries.c.sequence, entries.c.leaf_hash)
            .where(entries.c.sequence >= start, entries.c.sequence < end)
            .order_by(entries.c.sequence)
        ).all()
        if len(rows) != end - start:
            raise LedgerDamaged(
                f"leaves {start}..{end - 1} incomplete ({len(rows)} of {end - start} rows): entries removed"
            )
        return [_hash_bytes(row[1], f"the stored Merkle leaf of entry {row[0]}") for row in rows]

    def all_nodes(self, conn: Connection) -> dict[tuple[int, int], bytes]:
        found: dict[tuple[int, int], bytes] = {}
        for lv, ix, h in conn.execute(select(nodes)).all():
            if not isinstance(lv, int) or not isinstance(ix, int):
                raise LedgerDamaged(f"a Merkle node row has level {lv!r} and index {ix!r}, not integers")
            if not isinstance(h, bytes | bytearray | memoryview):
                raise LedgerDamaged(f"the stored Merkle node level {lv} index {ix} is {type(h).__name__}, not bytes")
            # Any length is kept: the verifier compares it with the node it recomputes and names the leaves.
            found[(lv, ix)] = bytes(h)
        return found

    def perfect_subtree_roots(self, conn: Connection, chunks: Sequence[tuple[int, int]]) -> list[bytes]:
        """Roots of perfect subtrees given as (level, index): stored nodes for the big ones, rehashed
        from at most 255 leaves for the small ones."""
        wanted = [(lv, ix) for lv, ix in chunks if lv >= NODE_MIN_LEVEL]
        stored: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            part = wanted[start : start + _IN_CHUNK]
            for lv, ix, h in conn.execute(
                select(nodes.c.level, nodes.c.idx, nodes.c.hash).where(tuple_(nodes.c.level, nodes.c.idx).in_(part))
            ).all():
                stored[(int(lv), int(ix))] = _hash_bytes(h, f"the stored Merkle node level {lv} index {ix}")
        roots: list[bytes] = []
        for lv, ix in chunks:
            if lv >= NODE_MIN_LEVEL:
                if (lv, ix) not in stored:
                    raise LedgerDamaged(
                        f"Merkle node level {lv} index {ix} (leaves {ix << lv}..{((ix + 1) << lv) - 1}) is missing"
                    )
                roots.append(stored[(lv, ix)])
            else:
                roots.append(root_from_leaf_hashes(self.leaf_hashes(conn, ix << lv, (ix + 1) << lv)))
        return roots

    def subtree_root(self, conn: Connection, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a subtree range, as RFC 9162 proof generation asks for."""
        if start == end:
            return EMPTY_ROOT
        return fold_subtree_roots(self.perfect_subtree_roots(conn, perfect_subtrees(start, end)))

    def peaks(self, conn: Connection, size: int) -> list[bytes]:
        """The compact-range frontier of the first `size` leaves, for resuming appends after a restart."""
        return self.perfect_subtree_roots(conn, perfect_subtrees(0, size))

    # ------------------------------------------------------------------ tree heads

    def insert_head(self, conn: Connection, head: SignedTreeHead) -> None:
        conn.execute(tree_heads.insert(), [head.model_dump()])

    def latest_head(self, conn: Connection) -> SignedTreeHead | None:
        row = conn.execute(select(tree_heads).order_by(tree_heads.c.tree_size.desc()).limit(1)).first()
        return None if row is None else _head(row)

    def head_of_size(self, conn: Connection, size: int) -> SignedTreeHead | None:
        row = conn.execute(select(tree_heads).where(tree_heads.c.tree_size == size)).first()
        return None if row is None else _head(row)

    def all_heads(self, conn: Connection) -> list[SignedTreeHead]:
        rows = conn.execute(select(tree_heads).order_by(tree_heads.c.tree_size)).all()
        return [_head(row) for row in rows]

    def count_entries(self, conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(entries)).scalar_one())


def _entry(row: Any) -> LedgerEntry:
    fields = row._asdict()
    key_id, value = fields.pop("signature_key_id"), fields.pop("signature_value")
    fields["signature"] = None if key_id is None or value is None else {"key_id": key_id, "value": value}
    try:
        return LedgerEntry.model_validate(fields)
    except ValidationError as exc:
        raise LedgerDamaged(
            f"entry {fields.get('sequence')!r} is malformed: {describe_validation_error(exc, show_input=True)}"
        ) from None


def _head(row: Any) -> SignedTreeHead:
    fields = row._asdict()
    try:
        return SignedTreeHead.model_validate(fields)
    except ValidationError as exc:
        raise LedgerDamaged(
            f"the tree head row of size {fields.get('tree_size')!r} is malformed:"
            f" {describe_validation_error(exc, show_input=True)}"
        ) from None


def _hash_bytes(value: object, what: str) -> bytes:
    """A stored hash column: exactly 32 bytes. Anything else (text, NULL, a short blob) was written by hand."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise LedgerDamaged(f"{what} is {type(value).__name__}, not 32 bytes")
    node = bytes(value)
    if len(node) != 32:
        raise LedgerDamaged(f"{what} is {len(node)} bytes, not 32")
    return node
