"""LedgerService over SQLite: appending, idempotency, the chain, triggers, signing cadence, keys."""

from __future__ import annotations

import base64
import itertools
import random
import sqlite3
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.audit.adapters.keys import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, Ed25519Signer
from services.audit.adapters.store import LedgerStore
from services.audit.application import LedgerService
from services.audit.domain.entries import GENESIS_PREV_HASH, ProducerSignature, entry_body
from services.audit.domain.proofs import verify_proof_document
from services.audit.ledger_proofs import verify_ledger
from shared.canonical import canonical_json, canonical_sha256
from shared.config import Settings
from shared.events.envelope import EnvelopeSignature
from shared.merkle import merkle_root
from shared.security.signing import EnvelopeSigner, verify_envelope
from shared.storage.db import Database
from tests.audit.audit_support import envelope


def test_entry_body_is_canonical_json() -> None:
    rng = random.Random(3)
    alphabet = 'ab"\\\n\t\x00\x1f é中🙂/<>&\u2028'
    for _ in range(200):
        fields = {
            "sequence": rng.randrange(10**12),
            "event_id": "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))),
            "type": "job.accepted",
            "producer": "".join(rng.choice(alphabet) for _ in range(5)),
            "actor": "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20))),
            "subject": "job_1",
            "occurred_at": "2026-01-01T00:00:00.000000+00:00",
            "trace_id": rng.choice([None, "ab" * 16]),
            "payload_sha256": "0" * 64,
            "prev_hash": "f" * 64,
            "signature": rng.choice(
                [None, {"key_id": "0123456789abcdef", "value": "".join(rng.choice(alphabet) for _ in range(9))}]
            ),
        }
        expected = canonical_json(fields)
        args = {**fields, "type_": fields["type"]}
        del args["type"], args["signature"]
        signature = fields["signature"]
        assert isinstance(signature, dict | None)
        args["signature_key_id"] = signature["key_id"] if signature else None
        args["signature_value"] = signature["value"] if signature else None
        assert entry_body(**args) == expected  # type: ignore[arg-type]


def test_append_assigns_contiguous_sequences_and_chains(ledger: LedgerService, store: LedgerStore) -> None:
    first = [envelope(i) for i in range(5)]
    result = ledger.append(first)
    assert (result.appended, result.first_sequence, result.last_sequence, result.tree_size) == (5, 0, 4, 5)
    second = ledger.append([envelope(i) for i in range(5, 8)])
    assert (second.first_sequence, second.last_sequence) == (5, 7)
    with store.read() as conn:
        rows = store.tail(conn, 100)
    assert [r.sequence for r in rows] == list(range(8))
    assert rows[0].prev_hash == GENESIS_PREV_HASH
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.entry_hash
    assert all(r.computed_hash() == r.entry_hash for r in rows)
    assert rows[2].payload_sha256 == canonical_sha256(first[2].payload)
    assert rows[2].trace_id == first[2].trace_id
    assert second.root_hash == merkle_root(r.body() for r in rows).hex()


def test_same_event_id_twice_gives_one_entry(ledger: LedgerService, store: LedgerStore) -> None:
    events = [envelope(i) for i in range(4)]
    result = ledger.append([events[0], events[1], events[0]])
    assert result.appended == 2 and result.skipped_event_ids == [events[0].event_id]
    redelivered = ledger.append([events[1], events[2], events[3], events[2]])
    assert redelivered.appended == 2
    assert sorted(redelivered.skipped_event_ids) == sorted([events[1].event_id, events[2].event_id])
    assert ledger.append([events[3]]).appended == 0
    with store.read() as conn:
        assert store.count_entries(conn) == 4
        assert [r.event_id for r in store.tail(conn, 10)] == [e.event_id for e in events]


def test_append_rejects_non_envelopes_without_writing(ledger: LedgerService, store: LedgerStore) -> None:
    with pytest.raises(TypeError, match="item 1 is dict, expected Envelope"):
        ledger.append([envelope(0), {"event_id": "x"}])  # type: ignore[list-item]
    with store.read() as conn:
        assert store.count_entries(conn) == 0


def test_triggers_refuse_update_and_delete(ledger: LedgerService, store: LedgerStore) -> None:
    ledger.append([envelope(i) for i in range(300)])  # 300 > 256 leaves: a stored Merkle node exists
    ledger.sign_now()
    for statement in (
        "UPDATE audit_entries SET actor = 'mallory' WHERE sequence = 1",
        "DELETE FROM audit_entries WHERE sequence = 299",
        "UPDATE audit_tree_heads SET root_hash = root_hash",
        "DELETE FROM audit_tree_heads",
        "UPDATE audit_nodes SET hash = hash",
        "DELETE FROM audit_nodes",
    ):
        with pytest.raises(DBAPIError, match="append-only"), store.write_transaction() as conn:
            conn.execute(text(statement))
    assert verify_ledger(store, ledger.signer.public_key).ok


def test_restart_resumes_the_frontier_from_storage(tmp_path: Path, settings: Settings, signer: Ed25519Signer) -> None:
    url = f"sqlite:///{tmp_path / 'restart.sqlite3'}"
    events = [envelope(i) for i in range(700)]
    first = LedgerStore(Database(url))
    first.create_schema()
    LedgerService(first, signer, settings).append(events[:517])
    first.db.dispose()
    second = LedgerStore(Database(url))
    resumed = LedgerService(second, signer, settings)
    result = resumed.append(events[517:])
    with second.read() as conn:
        bodies = [r.body() for r in second.tail(conn, 1000)]
    assert result.root_hash == merkle_root(bodies).hex()
    assert resumed.head().root_hash == result.root_hash
    assert verify_ledger(second, signer.public_key).ok


def test_two_appenders_on_one_database_stay_contiguous(
    tmp_path: Path, settings: Settings, signer: Ed25519Signer
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    setup = LedgerStore(Database(url))
    setup.create_schema()
    services = [LedgerService(LedgerStore(Database(url)), signer, settings) for _ in range(2)]
    events = [envelope(i) for i in range(400)]

    def run(service: LedgerService, offset: int) -> None:
        # Both deliver every event (at-least-once), interleaved in batches.
        for start in range(offset, 400, 40):
            service.append(events[start : start + 40] + events[(start + 200) % 400 : (start + 200) % 400 + 40])
            service.maybe_sign(datetime.now(UTC) + timedelta(hours=1))

    threads = [threading.Thread(target=run, args=(svc, i * 20)) for i, svc in enumerate(services)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    services[0].append(events)
    with setup.read() as conn:
        assert setup.count_entries(conn) == 400
        assert sorted(r.event_id for r in setup.tail(conn, 1000)) == sorted(e.event_id for e in events)
    services[1].sign_now()
    report = verify_ledger(setup, signer.public_key)
    assert report.ok, report.detail
    assert report.entries_checked == 400 and report.unsigned_entries == 0


def test_signing_cadence(store: LedgerStore, signer: Ed25519Signer, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h", sth_max_entries=10, sth_max_interval_s=5.0)
    ledger = LedgerService(store, signer, settings)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert ledger.maybe_sign(t0) is None  # empty ledger: nothing to sign
    ledger.append([envelope(i) for i in range(3)])
    first = ledger.maybe_sign(t0)
    assert first is not None and first.tree_size == 3  # no head yet: sign at once
    ledger.append([envelope(i) for i in range(3, 8)])
    assert ledger.maybe_sign(t0 + timedelta(seconds=1)) is None  # 5 new < 10, 1 s < 5 s
    by_time = ledger.maybe_sign(t0 + timedelta(seconds=5))
    assert by_time is not None and by_time.tree_size == 8
    ledger.append([envelope(i) for i in range(8, 18)])
    by_count = ledger.maybe_sign(t0 + timedelta(seconds=5, milliseconds=1))
    assert by_count is not None and by_count.tree_size == 18
    assert ledger.maybe_sign(t0 + timedelta(hours=1)) is None  # nothing unsigned
    assert ledger.sign_now(t0 + timedelta(hours=2)) == by_count  # nothing new: the existing head
    assert by_count.problem_with(signer.public_key) is None
    assert ledger.head().latest_signed == by_count
    assert by_count.root_hash == ledger.head().root_hash


def test_key_pair_created_once_with_modes(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    created = Ed25519Signer.load_or_create(keys)
    assert stat.S_IMODE((keys / PRIVATE_KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((keys / PUBLIC_KEY_FILE).stat().st_mode) == 0o644
    assert (keys / PUBLIC_KEY_FILE).read_text().startswith("-----BEGIN PUBLIC KEY-----")
    loaded = Ed25519Signer.load_or_create(keys)
    assert loaded.log_id == created.log_id
    (keys / PRIVATE_KEY_FILE).write_text("not a key")
    with pytest.raises(RuntimeError, match="cannot be read"):
        Ed25519Signer.load_or_create(keys)


def test_sqlite_triggers_exist_even_for_raw_connections(ledger: LedgerService, tmp_path: Path) -> None:
    ledger.append([envelope(0)])
    raw = sqlite3.connect(tmp_path / "audit.sqlite3")
    with pytest.raises(sqlite3.DatabaseError, match="append-only: UPDATE on audit_entries refused"):
        raw.execute("UPDATE audit_entries SET actor = 'x'")
    raw.close()


@pytest.mark.postgres
def test_postgres_storage_idempotent_concurrent_and_resumable(
    postgres_url: str, settings: Settings, signer: Ed25519Signer
) -> None:
    stores = [LedgerStore(Database(postgres_url)) for _ in range(2)]
    stores[0].create_schema()
    stores[1].create_schema()  # idempotent: tables and triggers already there
    services = [LedgerService(store, signer, settings) for store in stores]
    events = [envelope(i) for i in range(600)]

    def run(service: LedgerService, offset: int) -> None:
        for start in range(offset, 600, 100):
            service.append(events[start : start + 100] + events[:50])
            service.maybe_sign(datetime.now(UTC) + timedelta(hours=1))

    threads = [threading.Thread(target=run, args=(svc, i * 50)) for i, svc in enumerate(services)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert services[0].append(events).appended == 0
    services[1].sign_now()
    with stores[0].read() as conn:
        rows = stores[0].tail(conn, 1000)
    assert [r.sequence for r in rows] == list(range(600))
    assert sorted(r.event_id for r in rows) == sorted(e.event_id for e in events)
    fresh = LedgerService(LedgerStore(Database(postgres_url)), signer, settings)  # a restarted process
    assert fresh.head().root_hash == merkle_root(r.body() for r in rows).hex()
    report = verify_ledger(stores[0], signer.public_key)
    assert report.ok and report.entries_checked == 600, report.detail
    for store in [*stores, fresh.store]:
        store.db.dispose()


def test_empty_ledger_verifies_and_signs_size_zero(ledger: LedgerService, store: LedgerStore) -> None:
    assert verify_ledger(store, ledger.signer.public_key).ok
    head = ledger.sign_now()
    assert (head.tree_size, head.root_hash) == (0, merkle_root([]).hex())
    report = verify_ledger(store, ledger.signer.public_key_pem)
    assert report.ok and report.tree_heads_checked == 1
    ledger.append([envelope(1)])
    assert ledger.maybe_sign(head.issued_at() + timedelta(seconds=1)) is None  # 1 entry, 1 s < 60 s
    later = ledger.maybe_sign(head.issued_at() + timedelta(seconds=61))
    assert later is not None and later.tree_size == 1


def test_entries_record_who_signed_what(ledger: LedgerService, store: LedgerStore) -> None:
    key = Ed25519PrivateKey.generate()
    signed = EnvelopeSigner("registry", key).sign(envelope(1))
    assert signed.signature is not None
    unsigned = envelope(2)
    ledger.append([signed, unsigned])
    ledger.sign_now()
    with store.read() as conn:
        first, second = store.tail(conn, 2)
    assert first.producer == "registry"
    assert first.signature == ProducerSignature(key_id=signed.signature.key_id, value=signed.signature.value)
    assert second.signature is None
    # The entry plus the envelope are enough to check who said it: the recorded signature verifies.
    recorded = signed.model_copy(update={"signature": EnvelopeSignature(**first.signature.model_dump())})
    verify_envelope(recorded, lambda identity, key_id: key.public_key() if identity == "registry" else None)
    # The signature is part of the hashed entry: a proof with another signature fails.
    doc = ledger.proof_for(signed.event_id)
    assert doc.entry.signature == first.signature
    assert verify_proof_document(doc, ledger.signer.public_key).ok
    other = ProducerSignature(key_id=signed.signature.key_id, value=base64.b64encode(b"\x00" * 64).decode())
    forged = doc.model_copy(update={"entry": doc.entry.model_copy(update={"signature": other})})
    check = verify_proof_document(forged, ledger.signer.public_key)
    assert not check.ok and "entry_hash does not match" in check.detail
