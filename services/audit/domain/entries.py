"""Ledger entries: what is recorded per event, and the one byte string every entry hash is computed over.

The entry body is the canonical JSON (shared/canonical.py) of every field except entry_hash;
entry_hash = SHA-256(body) and the Merkle leaf = SHA-256(0x00 || body). entry_hash is a function of the
body, so the leaf binds every field, the previous entry's hash included.

Each entry records who said it: `producer` (a service name or `principal:<name>`) and the producer's
envelope signature (key id and base64 Ed25519 value, shared/security/signing.py), so with the envelope in hand
anyone can check that the producer's key signed exactly that event. The bus runtime verifies the signature
before the audit service sees the event; the ledger records it, it does not judge it.
docs/ledger-format.md gives the exact bytes."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field

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
    signature_key_id: str | None,
    signature_value: str | None,
) -> bytes:
    """canonical_json() of the entry fields other than entry_hash (keys in sorted order); the signature is
    {"key_id": ..., "value": ...}, or null for an unsigned event."""
    trace = "null" if trace_id is None else _encode_str(trace_id)
    if signature_key_id is None or signature_value is None:
        signature = "null"
    else:
        signature = f'{{"key_id":{_encode_str(signature_key_id)},"value":{_encode_str(signature_value)}}}'
    return (
        f'{{"actor":{_encode_str(actor)},"event_id":{_encode_str(event_id)},'
        f'"occurred_at":{_encode_str(occurred_at)},"payload_sha256":{_encode_str(payload_sha256)},'
        f'"prev_hash":{_encode_str(prev_hash)},"producer":{_encode_str(producer)},"sequence":{int(sequence)},'
        f'"signature":{signature},"subject":{_encode_str(subject)},"trace_id":{trace},"type":{_encode_str(type_)}}}'
    ).encode()


class ProducerSignature(BaseModel):
    """The producer's Ed25519 signature over its envelope, as it travelled: key id and base64 value."""

    # Strict (as LedgerEntry): both travel inside proof documents, where a wrong type is refused, not coerced.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    key_id: str = Field(min_length=1, max_length=64)
    value: str = Field(min_length=1, max_length=200)


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
    signature: ProducerSignature | None


class LedgerEntry(BaseModel):
    """One recorded event, as stored and as exported in proofs."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

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
    signature: ProducerSignature | None
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
            self.signature.key_id if self.signature else None,
            self.signature.value if self.signature else None,
        )

    def computed_hash(self) -> str:
        return hashlib.sha256(self.body()).hexdigest()

    def leaf_hash(self) -> bytes:
        return hashlib.sha256(b"\x00" + self.body()).digest()

