"""Golden ledger vectors for outside auditors: proof documents, checkpoints and a worked example, all computed
by the real ledger code from fixed keys, events and clocks, so the output is byte-for-byte reproducible.

    PYTHONPATH=. python tests/audit/make_vectors.py      # rewrite tests/audit/vectors/

tests/audit/test_vectors.py regenerates them in a temporary directory and fails when the bytes differ, so a
change to the ledger format cannot slip in unnoticed (regenerate, and update docs/ledger-format.md with it)."""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.adapters.keys import Ed25519Signer
from services.audit.adapters.store import LedgerStore
from services.audit.application import LedgerService, entry_fields, latest_checkpoint
from services.audit.domain.checkpoints import (
    COSIGNATURE_V1,
    cosignature_message,
    log_verifier,
    sign_note,
    witness_verifier,
)
from shared.config import Settings
from shared.events.envelope import Envelope
from shared.security.keys import public_key_raw
from shared.security.signing import EnvelopeSigner, signing_bytes
from shared.storage.db import Database

VECTORS_DIR = Path(__file__).parent / "vectors"
WITNESS_NAME = "witness.example/w1"
COSIGNED_AT = 1767225600  # 2026-01-01T00:00:00Z
ENTRIES = 6
FIRST_SIGNED_SIZE = 4
INCLUDED = 2


def fixed_key(label: str) -> Ed25519PrivateKey:
    """A key derived from a public label: for test vectors only, never for a real log."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"tunegate/ledger-vectors/{label}".encode()).digest())


def _events() -> list[Envelope]:
    registry = EnvelopeSigner("registry", fixed_key("producer/registry"))
    events = []
    for i in range(ENTRIES):
        unsigned = Envelope(
            event_id=f"0190f3a0-0000-7000-8000-{i:012d}",
            type="job.state_changed",
            occurred_at=datetime(2026, 1, 1, 9, 0, i, 250_000, tzinfo=UTC),
            producer="registry",
            actor="alice@example.com",
            subject=f"job_{i:04d}",
            trace=f"00-{i + 1:032x}-{i + 1:016x}-01",
            payload={"job_id": f"job_{i:04d}", "from_state": "requested", "to_state": "scanning"},
        )
        events.append(registry.sign(unsigned))
    return events


def build_vectors() -> dict[str, bytes]:
    """Every vector file, by name, built in a throw-away ledger."""
    with tempfile.TemporaryDirectory(prefix="tunegate-vectors-") as tmp:
        database = Database(f"sqlite:///{Path(tmp) / 'audit.sqlite3'}")
        try:
            return _build(LedgerStore(database), Path(tmp))
        finally:
            database.dispose()


def _build(store: LedgerStore, home: Path) -> dict[str, bytes]:
    store.create_schema()
    signer = Ed25519Signer(fixed_key("log"))
    ledger = LedgerService(store, signer, Settings(home=home))
    events = _events()
    ledger.append(events[:FIRST_SIGNED_SIZE])
    first = ledger.sign_now(datetime(2026, 1, 1, 9, 1, tzinfo=UTC))
    ledger.append(events[FIRST_SIGNED_SIZE:])
    head = ledger.sign_now(datetime(2026, 1, 1, 9, 2, tzinfo=UTC))

    inclusion = ledger.proof_for(events[INCLUDED].event_id)
    consistency = ledger.consistency(FIRST_SIGNED_SIZE, ENTRIES)
    checkpoint = latest_checkpoint(store, signer.public_key)
    witness_key = fixed_key("witness/w1")
    witness = witness_verifier(WITNESS_NAME, witness_key.public_key())
    cosignature = sign_note(
        checkpoint.text, WITNESS_NAME, COSIGNATURE_V1, witness_key.public_key(), witness_key.sign, COSIGNED_AT
    )
    cosigned = checkpoint.with_signature(cosignature)

    entry = inclusion.entry
    envelope = events[INCLUDED]
    assert envelope.signature is not None
    worked = {
        "envelope_signing_bytes": signing_bytes(envelope).decode(),
        "envelope_signature": envelope.signature.model_dump(),
        "producer_public_key_hex": public_key_raw(fixed_key("producer/registry").public_key()).hex(),
        "entry_fields": entry_fields(envelope).model_dump(),
        "payload_canonical_json": json.dumps(
            envelope.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ),
        "entry_body": entry.body().decode(),
        "entry_hash": entry.entry_hash,
        "leaf_hash": entry.leaf_hash().hex(),
        "log_public_key_hex": public_key_raw(signer.public_key).hex(),
        "log_id": signer.log_id,
        "tree_head_signed_message": head.signed_message().decode(),
        "tree_head_signature": head.signature,
        "first_tree_head": first.model_dump(),
        "checkpoint_text": checkpoint.text.decode(),
        "checkpoint_signature": head.checkpoint_signature,
        "log_verifier_key": log_verifier(signer.public_key).encode(),
        "witness_verifier_key": witness.encode(),
        "cosignature_signed_message": cosignature_message(checkpoint.text, COSIGNED_AT).decode(),
        "inclusion_audit_path": inclusion.audit_path,
        "consistency_path": consistency.consistency_path,
    }
    return {
        "log.pub": signer.public_key_pem.encode(),
        "log.vkey": (log_verifier(signer.public_key).encode() + "\n").encode(),
        "witness.vkey": (witness.encode() + "\n").encode(),
        "inclusion-proof.json": (inclusion.model_dump_json(indent=2) + "\n").encode(),
        "consistency-proof.json": (consistency.model_dump_json(indent=2) + "\n").encode(),
        "checkpoint.txt": checkpoint.render(),
        "checkpoint-cosigned.txt": cosigned.render(),
        "worked-example.json": (json.dumps(worked, indent=2, ensure_ascii=False) + "\n").encode(),
    }


def write_vectors(directory: Path = VECTORS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in build_vectors().items():
        (directory / name).write_bytes(data)
        written.append(directory / name)
    return written


if __name__ == "__main__":
    for path in write_vectors():
        print(path, file=sys.stderr)
