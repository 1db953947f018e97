"""Tampering with the stored ledger (triggers bypassed, as a database administrator could) must be caught by
verify_ledger, naming the first bad sequence and the kind of problem. Runs on SQLite, and on PostgreSQL
(marker `postgres`) when TUNEGATE_TEST_DATABASE_URL is set."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.audit.adapters.keys import Ed25519Signer
from services.audit.adapters.store import LedgerStore
from services.audit.application import LedgerService
from services.audit.domain.entries import entry_body
from services.audit.domain.verification import Problem, VerifyReport
from services.audit.ledger_proofs import verify_ledger
from shared.config import Settings
from shared.storage.db import Database
from tests.audit.audit_support import envelope

COLUMNS = (
    "event_id, type, producer, actor, subject, occurred_at, trace_id, payload_sha256, prev_hash, signature_key_id,"
    " signature_value, entry_hash, leaf_hash"
)


@dataclass
class Raw:
    """A connection that bypasses the append-only triggers."""

    dialect: str
    conn: Any

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        cursor = self.conn.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
        self.conn.commit()
        return [tuple(row) for row in rows]


@dataclass
class Ledger:
    service: LedgerService
    store: LedgerStore
    raw: Raw

    def verify(self) -> VerifyReport:
        return verify_ledger(self.store, self.service.signer.public_key)


def _build(url: str, settings: Settings, signer: Ed25519Signer) -> tuple[LedgerService, LedgerStore]:
    store = LedgerStore(Database(url))
    store.create_schema()
    service = LedgerService(store, signer, settings)
    service.append([envelope(i) for i in range(300)])
    service.sign_now()
    service.append([envelope(i) for i in range(300, 600)])
    service.sign_now()
    return service, store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tamper.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def built(url: str, settings: Settings, signer: Ed25519Signer) -> Iterator[tuple[LedgerService, LedgerStore]]:
    service, store = _build(url, settings, signer)
    yield service, store
    store.db.dispose()


@pytest.fixture
def ledger(url: str, built: tuple[LedgerService, LedgerStore]) -> Iterator[Ledger]:
    service, store = built
    if store.dialect == "sqlite":
        conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"))
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
    else:
        import psycopg

        conn = psycopg.connect(url)
        for table in ("audit_entries", "audit_nodes", "audit_tree_heads"):
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    conn.commit()
    yield Ledger(service, store, Raw(store.dialect, conn))
    conn.close()


def _expect(report: VerifyReport, sequence: int, problem: Problem) -> None:
    assert not report.ok
    assert (report.first_bad_sequence, report.problem) == (sequence, problem), report.detail


def test_intact_ledger_verifies(ledger: Ledger) -> None:
    report = ledger.verify()
    assert report.ok, report.detail
    assert (report.entries_checked, report.tree_heads_checked, report.signed_size) == (600, 2, 600)


def test_triggers_refuse_update_and_delete(built: tuple[LedgerService, LedgerStore]) -> None:
    service, store = built
    statements = [
        "UPDATE audit_entries SET actor = 'x' WHERE sequence = 3",
        "DELETE FROM audit_entries WHERE sequence = 599",
        "UPDATE audit_tree_heads SET root_hash = root_hash",
        "DELETE FROM audit_tree_heads",
        "UPDATE audit_nodes SET hash = hash",
        "DELETE FROM audit_nodes",
    ]
    if store.dialect == "postgresql":
        statements.append("TRUNCATE audit_entries")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), store.write_transaction() as conn:
            conn.execute(text(statement))
    assert verify_ledger(store, service.signer.public_key).ok


def test_altered_entry(ledger: Ledger) -> None:
    ledger.raw.execute("UPDATE audit_entries SET actor = 'mallory@example.com' WHERE sequence = 123")
    _expect(ledger.verify(), 123, Problem.ENTRY_HASH_MISMATCH)


def test_altered_producer_signature(ledger: Ledger) -> None:
    ledger.raw.execute(
        "UPDATE audit_entries SET signature_key_id = '0123456789abcdef', signature_value = 'AAAA' WHERE sequence = 42"
    )
    _expect(ledger.verify(), 42, Problem.ENTRY_HASH_MISMATCH)


def test_deleted_entry(ledger: Ledger) -> None:
    ledger.raw.execute("DELETE FROM audit_entries WHERE sequence = 200")
    _expect(ledger.verify(), 200, Problem.SEQUENCE_GAP)


def test_deleted_tail_is_caught_by_the_signed_head(ledger: Ledger) -> None:
    ledger.raw.execute("DELETE FROM audit_entries WHERE sequence >= 590")
    _expect(ledger.verify(), 590, Problem.ENTRIES_MISSING)


def test_swapped_entries(ledger: Ledger) -> None:
    first = ledger.raw.execute(f"SELECT {COLUMNS} FROM audit_entries WHERE sequence = 50")[0]
    second = ledger.raw.execute(f"SELECT {COLUMNS} FROM audit_entries WHERE sequence = 51")[0]
    assignments = ", ".join(f"{name.strip()} = ?" for name in COLUMNS.split(","))
    ledger.raw.execute(f"UPDATE audit_entries SET {assignments} WHERE sequence = 50", ("tmp", *second[1:]))
    ledger.raw.execute(f"UPDATE audit_entries SET {assignments} WHERE sequence = 51", first)
    ledger.raw.execute("UPDATE audit_entries SET event_id = ? WHERE sequence = 50", (second[0],))
    _expect(ledger.verify(), 50, Problem.PREV_HASH_MISMATCH)


def test_inserted_forged_entry(ledger: Ledger) -> None:
    # A careful forger: the forged entry chains correctly onto 299 and its own hashes are right; the
    # entries after it are renumbered. The break shows where the original 300 no longer links.
    (prev,) = ledger.raw.execute("SELECT entry_hash FROM audit_entries WHERE sequence = 299")[0]
    ledger.raw.execute("UPDATE audit_entries SET sequence = -(sequence + 1) WHERE sequence >= 300")
    ledger.raw.execute("UPDATE audit_entries SET sequence = -sequence WHERE sequence < 0")
    fields = ("forged-event", "job.accepted", "registry", "mallory", "job_x", "2026-01-01T00:00:00.000000+00:00")
    payload_sha = "0" * 64
    body = entry_body(
        300, fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], None, payload_sha, prev, None, None
    )
    ledger.raw.execute(
        f"INSERT INTO audit_entries (sequence, {COLUMNS}) VALUES (300, ?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL, NULL, ?, ?)",
        (*fields, payload_sha, prev, hashlib.sha256(body).hexdigest(), hashlib.sha256(b"\x00" + body).digest()),
    )
    _expect(ledger.verify(), 301, Problem.PREV_HASH_MISMATCH)


def test_rewritten_history_breaks_the_signed_root(ledger: Ledger, tmp_path: Path, settings: Settings) -> None:
    # Rewrite entry 10 and recompute every later hash, leaf and node: the chain is self-consistent again,
    # only the signed tree heads give it away.
    rows = ledger.raw.execute(f"SELECT sequence, {COLUMNS} FROM audit_entries ORDER BY sequence")
    prev = rows[9][12]
    for seq, eid, typ, producer, actor, subject, occurred, trace, psha, _prev, key_id, sig, _hash, _leaf in rows[10:]:
        actor = "mallory" if seq == 10 else actor
        body = entry_body(seq, eid, typ, producer, actor, subject, occurred, trace, psha, prev, key_id, sig)
        new_hash = hashlib.sha256(body).hexdigest()
        ledger.raw.execute(
            "UPDATE audit_entries SET actor = ?, prev_hash = ?, entry_hash = ?, leaf_hash = ? WHERE sequence = ?",
            (actor, prev, new_hash, hashlib.sha256(b"\x00" + body).digest(), seq),
        )
        prev = new_hash
    from shared.merkle import CompactRange

    leaves = [bytes(r[0]) for r in ledger.raw.execute("SELECT leaf_hash FROM audit_entries ORDER BY sequence")]
    compact = CompactRange(on_node=lambda lv, ix, h: ledger.raw.execute(
        "UPDATE audit_nodes SET hash = ? WHERE level = ? AND idx = ?", (h, lv, ix)
    ))  # fmt: skip
    for leaf in leaves:
        compact.append_leaf_hash(leaf)
    _expect(ledger.verify(), 299, Problem.TREE_HEAD_ROOT_MISMATCH)


def test_altered_tree_head(ledger: Ledger) -> None:
    ledger.raw.execute(
        "UPDATE audit_tree_heads SET timestamp = '2020-01-01T00:00:00.000000+00:00' WHERE tree_size = 600"
    )
    _expect(ledger.verify(), 599, Problem.BAD_SIGNATURE)


def test_altered_merkle_node(ledger: Ledger) -> None:
    ledger.raw.execute("UPDATE audit_nodes SET hash = ? WHERE level = 8 AND idx = 1", (b"\x01" * 32,))
    _expect(ledger.verify(), 511, Problem.MERKLE_NODE_MISMATCH)


def test_altered_leaf(ledger: Ledger) -> None:
    ledger.raw.execute("UPDATE audit_entries SET leaf_hash = ? WHERE sequence = 7", (b"\x02" * 32,))
    _expect(ledger.verify(), 7, Problem.LEAF_HASH_MISMATCH)


def test_other_key_fails_every_head(ledger: Ledger) -> None:
    report = verify_ledger(ledger.store, Ed25519Signer.generate().public_key)
    _expect(report, 299, Problem.BAD_SIGNATURE)
