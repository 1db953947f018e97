"""The audit ledger's application service: what the bus consumer, the timers and the CLI call.

LedgerService(store, signer, settings)
    append(envelopes) -> AppendResult      one transaction per batch, exactly one entry per event_id
    maybe_sign(now) / sign_now(now)        signed tree heads on the configured cadence
    head() -> LedgerHead
    proof_for(event_id) / consistency(old, new)
(proofs, verification and checkpoints: ledger_proofs.py)

All methods are synchronous (SQLAlchemy Core); an asyncio caller runs them with asyncio.to_thread."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import Connection

from services.audit.adapters.keys import Ed25519Signer, log_keys_dir
from services.audit.adapters.store import NODE_MIN_LEVEL, LedgerStore
from services.audit.domain.entries import EntryFields, ProducerSignature, entry_body
from services.audit.domain.proofs import (
    ConsistencyProofDocument,
    InclusionProofDocument,
)
from services.audit.domain.tree_heads import SignedTreeHead, TreeHead, format_timestamp
from services.audit.ledger_proofs import build_consistency_proof, build_inclusion_proof
from shared.canonical import canonical_sha256
from shared.config import Settings
from shared.events.envelope import Envelope
from shared.merkle import CompactRange
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
