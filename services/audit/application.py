"""The audit ledger's application service: what the bus consumer, the timers and the CLI call.

LedgerService(store, signer, settings)
    append(envelopes) -> AppendResult      one transaction per batch, exactly one entry per event_id
    maybe_sign(now) / sign_now(now)        signed tree heads on the configured cadence
    head() -> LedgerHead
    proof_for(event_id) / consistency(old, new)
verify_ledger(store, public_key) -> VerifyReport

All methods are synchronous (SQLAlchemy Core); an asyncio caller runs them with asyncio.to_thread."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel
from sqlalchemy import Connection

from services.audit.adapters.keys import Ed25519Signer, log_keys_dir
from services.audit.adapters.store import NODE_MIN_LEVEL, LedgerDamaged, LedgerStore
from services.audit.domain.checkpoints import CheckedCheckpoint, SignedNote
from services.audit.domain.entries import EntryFields, ProducerSignature, entry_body
from services.audit.domain.proofs import (
    ConsistencyProofDocument,
    InclusionProofDocument,
    PublicKeyInput,
)
from services.audit.domain.tree_heads import SignedTreeHead, TreeHead, format_timestamp, log_id_for
from services.audit.domain.verification import LedgerVerifier, Problem, VerifyReport
from shared.canonical import canonical_sha256
from shared.config import Settings
from shared.events.envelope import Envelope
from shared.merkle import CompactRange, consistency_path, inclusion_path, verify_consistency
from shared.security.keys import load_public_key
from shared.storage.db import Database


def entry_fields(envelope: Envelope) -> EntryFields:
    """What the ledger records of an envelope: its identity, who produced and signed it, and the payload's hash."""
    signature = envelope.signature
    return EntryFields(
        event_id=envelope.event_id,
        type=envelope.type,
        producer=envelope.producer,
        actor=envelope.actor,
        subject=envelope.subject,
        occurred_at=envelope.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        trace_id=envelope.trace_id,
        payload_sha256=canonical_sha256(envelope.payload),
        signature=ProducerSignature(key_id=signature.key_id, value=signature.value) if signature else None,
    )


class ProofUnavailable(LookupError):
    """A proof that cannot be produced (unknown event, unsigned entry, sizes out of range); says why."""


class AppendResult(BaseModel):
    appended: int
    skipped_event_ids: list[str]
    first_sequence: int | None
    last_sequence: int | None
    tree_size: int
    root_hash: str


class LedgerHead(BaseModel):
    tree_size: int
    root_hash: str
    last_entry_hash: str
    latest_signed: SignedTreeHead | None


class LedgerService:
    def __init__(self, store: LedgerStore, signer: Ed25519Signer, settings: Settings) -> None:
        self.store = store
        self.signer = signer
        self.settings = settings
        # Frontier after our last commit: (tree size, last entry hash, peaks). Re-used only when the head
        # re-read under the lock still matches, so another appender's writes are never missed.
        self._frontier: tuple[int, str, list[bytes]] | None = None

    # ------------------------------------------------------------------ appending

    def _compact_at(self, conn: Connection, size: int, last_hash: str) -> CompactRange:
        cached = self._frontier
        if cached is not None and cached[0] == size and cached[1] == last_hash:
            return CompactRange.from_peaks(size, cached[2])
        return CompactRange.from_peaks(size, self.store.peaks(conn, size))

    def append(self, envelopes: Sequence[Envelope]) -> AppendResult:
        """Append one entry per new event_id, in order, in one transaction. Event ids already in the
        ledger, or repeated within the batch, are skipped (redelivery is expected, not an error)."""
        fields: list[EntryFields] = []
        skipped: list[str] = []
        seen: set[str] = set()
        for position, envelope in enumerate(envelopes):
            if not isinstance(envelope, Envelope):
                raise TypeError(f"append: item {position} is {type(envelope).__name__}, expected Envelope")
            if envelope.event_id in seen:
                skipped.append(envelope.event_id)
                continue
            seen.add(envelope.event_id)
            # Payload hashing happens before the lock is taken, keeping the critical section short.
            fields.append(entry_fields(envelope))

        with self.store.write_transaction() as conn:
            size, prev = self.store.head(conn)
            existing = self.store.existing_event_ids(conn, [f.event_id for f in fields])
            compact = self._compact_at(conn, size, prev)
            new_nodes: list[tuple[int, int, bytes]] = []

            def keep_node(level: int, index: int, node: bytes) -> None:
                if level >= NODE_MIN_LEVEL:
                    new_nodes.append((level, index, node))

            compact.on_node = keep_node
            rows: list[dict[str, object]] = []
            sha256 = hashlib.sha256
            first = size
            for f in fields:
                if f.event_id in existing:
                    skipped.append(f.event_id)
                    continue
                signature = f.signature
                key_id, value = (signature.key_id, signature.value) if signature else (None, None)
                body = entry_body(
                    size, f.event_id, f.type, f.producer, f.actor, f.subject, f.occurred_at, f.trace_id,
                    f.payload_sha256, prev, key_id, value,
                )  # fmt: skip
                entry_hash = sha256(body).hexdigest()
                leaf = sha256(b"\x00" + body).digest()
                rows.append(
                    {
                        "sequence": size,
                        "event_id": f.event_id,
                        "type": f.type,
                        "producer": f.producer,
                        "actor": f.actor,
                        "subject": f.subject,
                        "occurred_at": f.occurred_at,
                        "trace_id": f.trace_id,
                        "payload_sha256": f.payload_sha256,
                        "prev_hash": prev,
                        "signature_key_id": key_id,
                        "signature_value": value,
                        "entry_hash": entry_hash,
                        "leaf_hash": leaf,
                    }
                )
                compact.append_leaf_hash(leaf)
                size += 1
                prev = entry_hash
            self.store.insert_entry_rows(conn, rows)
            self.store.insert_nodes(conn, new_nodes)
        compact.on_node = None
        self._frontier = (size, prev, compact.peaks())
        return AppendResult(
            appended=len(rows),
            skipped_event_ids=skipped,
            first_sequence=first if rows else None,
            last_sequence=size - 1 if rows else None,
            tree_size=size,
            root_hash=compact.root().hex(),
        )

    # ------------------------------------------------------------------ signing

    def maybe_sign(self, now: datetime | None = None) -> SignedTreeHead | None:
        """Sign a new head when entries are unsigned and either sth_max_entries accumulated or
        sth_max_interval_s passed since the last head. Returns the new head, or None."""
        now = now or datetime.now(UTC)
        with self.store.read() as conn:
            size, _ = self.store.head(conn)
            latest = self.store.latest_head(conn)
        signed = latest.tree_size if latest else 0
        if size <= signed:
            return None
        due = (
            latest is None
            or size - signed >= self.settings.sth_max_entries
            or (now - latest.issued_at()).total_seconds() >= self.settings.sth_max_interval_s
        )
        return self._sign(now) if due else None

    def sign_now(self, now: datetime | None = None) -> SignedTreeHead:
        """Sign the current tree (or return the existing head when nothing was appended since)."""
        return self._sign(now or datetime.now(UTC))

    def _sign(self, now: datetime) -> SignedTreeHead:
        with self.store.write_transaction() as conn:
            size, last = self.store.head(conn)
            latest = self.store.latest_head(conn)
            if latest is not None and latest.tree_size == size:
                return latest
            root = self._compact_at(conn, size, last).root().hex()
            statement = TreeHead(
                tree_size=size, root_hash=root, timestamp=format_timestamp(now), log_id=self.signer.log_id
            )
            head = SignedTreeHead(
                **statement.model_dump(),
                signature=self.signer.sign(statement.signed_message()).hex(),
                checkpoint_signature=self.signer.sign(statement.checkpoint().text()).hex(),
            )
            self.store.insert_head(conn, head)
        return head

    # ------------------------------------------------------------------ reading

    def head(self) -> LedgerHead:
        with self.store.read() as conn:
            size, last = self.store.head(conn)
            root = CompactRange.from_peaks(size, self.store.peaks(conn, size)).root().hex()
            latest = self.store.latest_head(conn)
        return LedgerHead(tree_size=size, root_hash=root, last_entry_hash=last, latest_signed=latest)

    def proof_for(self, event_id: str) -> InclusionProofDocument:
        return build_inclusion_proof(self.store, event_id, self.signer.public_key_pem)

    def consistency(self, old_size: int, new_size: int) -> ConsistencyProofDocument:
        return build_consistency_proof(self.store, old_size, new_size, self.signer.public_key_pem)


# ---------------------------------------------------------------------- read-only operations (CLI, API)


def build_inclusion_proof(store: LedgerStore, event_id: str, public_key_pem: str) -> InclusionProofDocument:
    """Proof that `event_id` is in the latest signed tree covering it."""
    with store.read() as conn:
        entry = store.entry_by_event_id(conn, event_id)
        if entry is None:
            raise ProofUnavailable(f"event {event_id!r} is not in the audit ledger")
        head = store.latest_head(conn)
        if head is None or head.tree_size <= entry.sequence:
            signed = head.tree_size if head else 0
            raise ProofUnavailable(
                f"event {event_id!r} is entry {entry.sequence}, not yet covered by a signed tree head"
                f" (latest signed size {signed}); retry after the next signing"
            )
        _require_entries(store, conn, head)
        path = inclusion_path(entry.sequence, head.tree_size, lambda a, b: store.subtree_root(conn, a, b))
    return InclusionProofDocument(
        entry=entry,
        leaf_index=entry.sequence,
        tree_size=head.tree_size,
        audit_path=[node.hex() for node in path],
        tree_head=head,
        public_key_pem=public_key_pem,
    )


def build_consistency_proof(
    store: LedgerStore, old_size: int, new_size: int, public_key_pem: str
) -> ConsistencyProofDocument:
    with store.read() as conn:
        size, _ = store.head(conn)
        if not 0 <= old_size <= new_size <= size:
            raise ProofUnavailable(
                f"consistency needs 0 <= old ({old_size}) <= new ({new_size}) <= ledger size ({size})"
            )
        # The newer tree must be signed: its head is what binds both roots (the path derives the old root from
        # the new tree), while an unsigned newer root is only this document's word, which anyone could make up
        # to extend any tree. The older head is added when one exists.
        new_head = store.head_of_size(conn, new_size)
        if new_head is None:
            signed = [head.tree_size for head in store.all_heads(conn)]
            raise ProofUnavailable(
                f"the log signed no tree head of size {new_size}, so nothing would bind the newer root; pick a signed"
                f" size for NEW (latest signed sizes: {', '.join(str(s) for s in signed[-10:]) or 'none yet'})"
            )
        old_head = store.head_of_size(conn, old_size)
        old_root = store.subtree_root(conn, 0, old_size)
        new_root = store.subtree_root(conn, 0, new_size)
        path = consistency_path(old_size, new_size, lambda a, b: store.subtree_root(conn, a, b))
    return ConsistencyProofDocument(
        old_size=old_size,
        new_size=new_size,
        old_root=old_root.hex(),
        new_root=new_root.hex(),
        consistency_path=[node.hex() for node in path],
        old_head=old_head,
        new_head=new_head,
        public_key_pem=public_key_pem,
    )


def verify_ledger(store: LedgerStore, public_key: PublicKeyInput, chunk: int = 20_000) -> VerifyReport:
    """Check the whole ledger (see domain/verification.py), streaming rows in chunks."""
    key = public_key if isinstance(public_key, Ed25519PublicKey) else load_public_key(public_key)
    started = time.perf_counter()
    with store.read() as conn:
        # Heads first, then the size, then nodes: every head and node read belongs to entries below `size`
        # even while a service keeps appending, so a live ledger verifies without false alarms.
        try:
            heads = store.all_heads(conn)
            size, _ = store.head(conn)
            nodes = store.all_nodes(conn)
        except LedgerDamaged as exc:
            # A row that does not even parse is tampering too: a failed verification naming it, not a crash.
            return VerifyReport(
                ok=False, entries_checked=0, tree_heads_checked=0, signed_size=0, unsigned_entries=0,
                problem=Problem.MALFORMED_ROW, detail=str(exc), elapsed_s=round(time.perf_counter() - started, 4),
            )  # fmt: skip
        verifier = LedgerVerifier(heads, nodes, key, NODE_MIN_LEVEL)
        for rows in store.iter_rows(conn, chunk=chunk, below=size):
            if not verifier.feed(rows):
                break
    return verifier.finish(time.perf_counter() - started)


class CheckpointCheck(BaseModel):
    """The ledger against a checkpoint held elsewhere: it must hold at least that many entries, and the
    tree they form must extend the checkpoint's tree (RFC 9162 consistency proof)."""

    ok: bool
    detail: str
    checkpoint_size: int
    checkpoint_root: str
    ledger_size: int
    ledger_root: str
    cosigned_by: list[str]


def check_against_checkpoint(store: LedgerStore, trusted: CheckedCheckpoint, ledger_size: int) -> CheckpointCheck:
    """Compare the first `ledger_size` entries (already verified by verify_ledger) with a trusted checkpoint."""
    checkpoint = trusted.checkpoint
    with store.read() as conn:

        def subtree_root(start: int, end: int) -> bytes:
            return store.subtree_root(conn, start, end)

        ledger_root = subtree_root(0, ledger_size)
        path = (
            consistency_path(checkpoint.tree_size, ledger_size, subtree_root)
            if checkpoint.tree_size <= ledger_size
            else []
        )

    def result(ok: bool, detail: str) -> CheckpointCheck:
        return CheckpointCheck(
            ok=ok,
            detail=detail,
            checkpoint_size=checkpoint.tree_size,
            checkpoint_root=checkpoint.root_hash.hex(),
            ledger_size=ledger_size,
            ledger_root=ledger_root.hex(),
            cosigned_by=list(trusted.cosigned_by),
        )

    if ledger_size < checkpoint.tree_size:
        return result(
            False,
            f"the ledger holds {ledger_size} entries but the trusted checkpoint covers {checkpoint.tree_size}:"
            f" entries {ledger_size}..{checkpoint.tree_size - 1} were cut off or the ledger was rolled back",
        )
    if not verify_consistency(checkpoint.tree_size, ledger_size, checkpoint.root_hash, ledger_root, path):
        return result(
            False,
            f"the ledger's first {checkpoint.tree_size} entries do not form the trusted checkpoint's tree"
            f" (root {checkpoint.root_hash.hex()}): history was rewritten or forked",
        )
    witnesses = f", cosigned by {', '.join(trusted.cosigned_by)}" if trusted.cosigned_by else ""
    return result(
        True,
        f"the ledger ({ledger_size} entries) extends the trusted checkpoint of size {checkpoint.tree_size}{witnesses}",
    )


def latest_checkpoint(store: LedgerStore, public_key: Ed25519PublicKey) -> SignedNote:
    """The latest signed tree head as a C2SP checkpoint note; ProofUnavailable when nothing is signed yet,
    LedgerDamaged when the head does not verify: its signatures under `public_key`, and its root against the
    tree the stored entries and nodes form. A checkpoint is what others keep as the truth, so an altered head is
    never handed out (the full check of every entry is `tunegate audit verify`)."""
    with store.read() as conn:
        head = store.latest_head(conn)
        if head is None:
            raise ProofUnavailable("the ledger has no signed tree head yet")
        if head.log_id != log_id_for(public_key):
            # Another log's key (a witness following another log, a key file swapped): not the ledger's fault.
            raise ProofUnavailable(
                f"the ledger's heads are signed for log {head.log_id}, not for the log of the key given"
                f" ({log_id_for(public_key)}); not exported"
            )
        problem = head.problem_with(public_key)
        if problem is not None:
            raise LedgerDamaged(f"the latest signed tree head does not verify ({problem}); not exported")
        _require_entries(store, conn, head)
        root = store.subtree_root(conn, 0, head.tree_size).hex()
    if root != head.root_hash:
        raise LedgerDamaged(
            f"the latest signed tree head (size {head.tree_size}) signs root {head.root_hash}, the stored tree"
            f" gives {root}; not exported"
        )
    return head.signed_note(public_key)


def _require_entries(store: LedgerStore, conn: Connection, head: SignedTreeHead) -> None:
    """LedgerDamaged unless the ledger still holds every entry `head` covers (a head past the end means entries
    were cut off or the head was altered; either way no proof or checkpoint can stand on it)."""
    size, _ = store.head(conn)
    if head.tree_size > size:
        raise LedgerDamaged(
            f"a signed tree head covers {head.tree_size} entries but the ledger holds {size}:"
            " entries removed or the head altered"
        )


def open_store(settings: Settings, *, create: bool) -> LedgerStore:
    store = LedgerStore(Database(settings.database_url_for("audit")))
    if create:
        store.create_schema()
    return store


def ledger_event_ids(settings: Settings) -> list[str]:
    """The event id of every ledger entry, in sequence order: what the replica test and the ingest bench count
    events against."""
    store = open_store(settings, create=False)
    try:
        with store.read() as conn:
            return [row.event_id for rows in store.iter_rows(conn) for row in rows]
    finally:
        store.db.dispose()


def open_ledger(settings: Settings) -> LedgerService:
    """The service as the audit process runs it: schema ensured, key pair loaded or created."""
    return LedgerService(
        open_store(settings, create=True), Ed25519Signer.load_or_create(log_keys_dir(settings)), settings
    )
