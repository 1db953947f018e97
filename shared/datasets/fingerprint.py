"""Per-record hashes and the dataset fingerprint (RFC 9162 Merkle root over them).

record hash = sha256(canonical_json(record)); the fingerprint's leaves are those 32-byte hashes, so an
inclusion proof for one record needs only the record and log2(n) sibling hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from shared.canonical import canonical_json
from shared.datasets.formats import DEFAULT_MAX_RECORD_CHARS, iter_records
from shared.merkle import CompactRange


def record_hash(record: dict[str, Any]) -> bytes:
    return hashlib.sha256(canonical_json(record)).digest()


class RecordHasher:
    """Streaming fingerprint: feed records (or their hashes) in dataset order, read the root at the end."""

    def __init__(self) -> None:
        self._range = CompactRange()

    def add_hash(self, digest: bytes) -> None:
        self._range.append(digest)

    def add(self, record: dict[str, Any]) -> bytes:
        digest = record_hash(record)
        self.add_hash(digest)
        return digest

    @property
    def count(self) -> int:
        return self._range.size

    def hexdigest(self) -> str:
        return self._range.root().hex()


def dataset_fingerprint(path: Path | str, fmt: str = "auto", *, max_chars: int = DEFAULT_MAX_RECORD_CHARS) -> str:
    """Merkle root (hex) over the record hashes of a dataset file, in file order."""
    hasher = RecordHasher()
    for item in iter_records(path, fmt, max_chars=max_chars):
        hasher.add(item.record)
    return hasher.hexdigest()
