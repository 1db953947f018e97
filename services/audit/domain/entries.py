"""Ledger entries: what is recorded per event, and the one byte string every entry hash is computed over.

The entry body is the canonical JSON (shared/canonical.py) of every field except entry_hash;
entry_hash = SHA-256(body) and the Merkle leaf = SHA-256(0x00 || body). entry_hash is a function of the
body, so the leaf binds every field, the previous entry's hash included."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

from pydantic import BaseModel, ConfigDict, Field

from shared.canonical import canonical_sha256
from shared.events.envelope import Envelope

GENESIS_PREV_HASH = "0" * 64
HEX64 = r"^[0-9a-f]{64}$"

# json's own C string encoder (the one json.dumps(ensure_ascii=False) uses), so the hand-assembled body
# is byte-identical to canonical_json() while skipping dict building and key sorting on the hot path.
_encode_str = json.encoder.encode_basestring  # type: ignore[attr-defined]


def entry_body(
    sequence: int,
    event_id: str,
    type_: str,
    producer: str,
    actor: str,
    subject: str,
    occurred_at: str,
    trace_id: str | None,
    payload_sha256: str,
    prev_hash: str,
) -> bytes:
    """canonical_json() of the entry fields other than entry_hash (keys in sorted order)."""
    trace = "null" if trace_id is None else _encode_str(trace_id)
    return (
        f'{{"actor":{_encode_str(actor)},"event_id":{_encode_str(event_id)},'
        f'"occurred_at":{_encode_str(occurred_at)},"payload_sha256":{_encode_str(payload_sha256)},'
        f'"prev_hash":{_encode_str(prev_hash)},"producer":{_encode_str(producer)},"sequence":{int(sequence)},'
        f'"subject":{_encode_str(subject)},"trace_id":{trace},"type":{_encode_str(type_)}}}'
    ).encode()


class EntryFields(BaseModel):
    """An entry before it is placed in the chain (no sequence, no hashes yet)."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    type: str
    producer: str
    actor: str
    subject: str
    occurred_at: str
    trace_id: str | None
    payload_sha256: str = Field(pattern=HEX64)

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> EntryFields:
        return cls(
            event_id=envelope.event_id,
            type=envelope.type,
            producer=envelope.producer,
            actor=envelope.actor,
            subject=envelope.subject,
            occurred_at=envelope.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
            trace_id=envelope.trace_id,
            payload_sha256=canonical_sha256(envelope.payload),
        )


class LedgerEntry(BaseModel):
    """One recorded event, as stored and as exported in proofs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sequence: int = Field(ge=0)
    event_id: str
    type: str
    producer: str
    actor: str
    subject: str
    occurred_at: str
    trace_id: str | None
    payload_sha256: str = Field(pattern=HEX64)
    prev_hash: str = Field(pattern=HEX64)
    entry_hash: str = Field(pattern=HEX64)

    def body(self) -> bytes:
        return entry_body(
            self.sequence,
            self.event_id,
            self.type,
            self.producer,
            self.actor,
            self.subject,
            self.occurred_at,
            self.trace_id,
            self.payload_sha256,
            self.prev_hash,
        )

    def computed_hash(self) -> str:
        return hashlib.sha256(self.body()).hexdigest()

    def leaf_hash(self) -> bytes:
        return hashlib.sha256(b"\x00" + self.body()).digest()

