"""Audit ledger benchmark: build an N-entry SQLite ledger through LedgerService.append (batches of 500,
tree heads signed on the default cadence, envelopes signed by their producer), then time a full verify_ledger pass,
a few proofs and a check against a trusted checkpoint.

    .venv/bin/python bench/audit_verify.py [--entries 1000000] [--batch 500] [--dir DIR]

Prints entries/s for append and for verification (the figure to watch: verification streams every row,
recomputes every hash, the chain, the Merkle root at each signed head and each signature)."""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.adapters.keys import Ed25519Signer
from services.audit.adapters.store import LedgerStore
from services.audit.application import LedgerService
from services.audit.domain.checkpoints import log_verifier, open_checkpoint
from services.audit.domain.proofs import verify_consistency_document, verify_proof_document
from services.audit.ledger_proofs import check_against_checkpoint, latest_checkpoint, verify_ledger
from shared.config import Settings
from shared.events.envelope import Envelope
from shared.security.signing import EnvelopeSigner
from shared.storage.db import Database


def make_batch(start: int, count: int, producer: EnvelopeSigner) -> list[Envelope]:
    """Signed by the producer, as on the bus: each entry records the signature."""
    batch = []
    for i in range(start, start + count):
        envelope = Envelope(
            type="job.state_changed",
            producer="registry",
            actor=f"user-{i % 97}@example.com",
            subject=f"job_{i:08d}",
            trace=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
            payload={"job_id": f"job_{i:08d}", "from_state": "scanning", "to_state": "awaiting_approval"},
        )
        batch.append(producer.sign(envelope))
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=None, help="Keep the ledger here (default: a temp dir).")
    args = parser.parse_args()

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="tunegate-audit-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=workdir / "home")
    db = Database(f"sqlite:///{workdir / 'audit.sqlite3'}")
    store = LedgerStore(db)
    store.create_schema()
    ledger = LedgerService(store, Ed25519Signer.load_or_create(workdir / "home" / "keys"), settings)

    producer = EnvelopeSigner("registry", Ed25519PrivateKey.generate())
    ids: list[str] = []
    append_s = envelope_s = 0.0
    clock = datetime.now(UTC)
    done = 0
    while done < args.entries:
        count = min(args.batch, args.entries - done)
        t0 = time.perf_counter()
        batch = make_batch(done, count, producer)
        t1 = time.perf_counter()
        ledger.append(batch)
        # A simulated clock: with the default 0.1 s cadence a real run signs every few batches.
        clock += timedelta(seconds=0.02)
        ledger.maybe_sign(clock)
        append_s += time.perf_counter() - t1
        envelope_s += t1 - t0
        ids.append(batch[0].event_id)
        done += count
    ledger.sign_now()
    print(
        f"append:  {done} entries in {append_s:.1f} s = {done / append_s:,.0f} entries/s "
        f"(batches of {args.batch}, signing included; envelope construction {envelope_s:.1f} s excluded)"
    )

    report = verify_ledger(store, ledger.signer.public_key)
    print(
        f"verify:  {report.entries_checked} entries, {report.tree_heads_checked} signed heads, ok={report.ok} "
        f"in {report.elapsed_s:.2f} s = {report.entries_per_s:,.0f} entries/s"
    )
    if not report.ok:
        print(f"         {report.problem}: {report.detail}")

    rng = random.Random(1)
    samples = rng.sample(ids, min(20, len(ids)))
    t0 = time.perf_counter()
    docs = [ledger.proof_for(event_id) for event_id in samples]
    proof_ms = (time.perf_counter() - t0) / len(samples) * 1000
    assert all(verify_proof_document(doc, ledger.signer.public_key).ok for doc in docs)
    size = ledger.head().tree_size
    t0 = time.perf_counter()
    consistency = ledger.consistency(rng.randrange(1, size), size)
    consistency_ms = (time.perf_counter() - t0) * 1000
    assert verify_consistency_document(consistency, ledger.signer.public_key).ok
    print(f"proofs:  inclusion {proof_ms:.1f} ms each (tree of {size}), consistency {consistency_ms:.1f} ms")
    note = latest_checkpoint(store, ledger.signer.public_key).render()
    t0 = time.perf_counter()
    trusted = open_checkpoint(note, log_verifier(ledger.signer.public_key))
    check = check_against_checkpoint(store, trusted, size)
    assert check.ok, check.detail
    print(f"checkpoint: parse, verify and check the ledger against it in {(time.perf_counter() - t0) * 1000:.1f} ms")
    print(f"ledger:  {workdir / 'audit.sqlite3'} ({(workdir / 'audit.sqlite3').stat().st_size / 1e6:.0f} MB)")
    db.dispose()


if __name__ == "__main__":
    main()
