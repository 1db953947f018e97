"""Signed tree heads: an Ed25519 signature over {tree_size, root_hash, timestamp, log_id}, so a head names
exactly one tree (the size is signed too: a Merkle root alone does not commit to it), and a second one by the
same key over the same tree as a C2SP checkpoint (domain/checkpoints.py), which other tooling can read."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from services.audit.domain.checkpoints import ED25519, ORIGIN_PREFIX, Checkpoint, NoteSignature, SignedNote, key_id
from shared.canonical import canonical_json
from shared.security.keys import public_key_raw

HEX64 = r"^[0-9a-f]{64}$"


def log_id_for(key: Ed25519PublicKey) -> str:
    """The log's identity: SHA-256 of the raw 32-byte public key, hex."""
    return hashlib.sha256(public_key_raw(key)).hexdigest()


def format_timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("tree head timestamp must carry a timezone (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class TreeHead(BaseModel):
    """The signed statement, before its signature."""

    # Strict: heads travel inside proof documents, where "30" or 30.0 is refused as a size, not coerced.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    tree_size: int = Field(ge=0)
    root_hash: str = Field(pattern=HEX64)
    timestamp: str
    log_id: str = Field(pattern=HEX64)

    def signed_message(self) -> bytes:
        return canonical_json(
            {
                "tree_size": self.tree_size,
                "root_hash": self.root_hash,
                "timestamp": self.timestamp,
                "log_id": self.log_id,
            }
        )

    @property
    def origin(self) -> str:
        """The checkpoint origin: equal to checkpoints.log_origin(key), since log_id is SHA-256 of the key."""
        return f"{ORIGIN_PREFIX}{self.log_id[:16]}"

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.origin, self.tree_size, bytes.fromhex(self.root_hash))


class SignedTreeHead(TreeHead):
    signature: str = Field(pattern=r"^[0-9a-f]{128}$", description="Ed25519 signature of signed_message(), hex.")
    checkpoint_signature: str = Field(
        pattern=r"^[0-9a-f]{128}$", description="Ed25519 signature of the checkpoint note text, hex."
    )

    def issued_at(self) -> datetime:
        return datetime.fromisoformat(self.timestamp)

    def problem_with(self, key: Ed25519PublicKey) -> str | None:
        """None when the head is signed by `key` for this log, else what is wrong."""
        if self.log_id != log_id_for(key):
            return f"tree head of size {self.tree_size} names log {self.log_id}, not this key's log {log_id_for(key)}"
        try:
            key.verify(bytes.fromhex(self.signature), self.signed_message())
        except InvalidSignature:
            return f"tree head of size {self.tree_size}: Ed25519 signature does not verify"
        try:
            key.verify(bytes.fromhex(self.checkpoint_signature), self.checkpoint().text())
        except InvalidSignature:
            return f"tree head of size {self.tree_size}: the checkpoint's Ed25519 signature does not verify"
        return None

    def signed_note(self, key: Ed25519PublicKey) -> SignedNote:
        """The checkpoint as a signed note carrying the log's signature (key: the log's public key)."""
        signature = NoteSignature(
            self.origin, key_id(self.origin, ED25519, key), bytes.fromhex(self.checkpoint_signature)
        )
        return SignedNote(self.checkpoint().text(), (signature,))
