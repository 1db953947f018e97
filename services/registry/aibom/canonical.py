"""The AIBOM's one byte form: the sha256 the registry publishes in model.registered (and the ledger commits
to) is over exactly these bytes, so anyone holding the file recomputes it."""

from __future__ import annotations

from typing import Any

from shared.canonical import canonical_json, sha256_hex


def aibom_bytes(doc: dict[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, no insignificant whitespace, UTF-8) and a trailing newline."""
    return canonical_json(doc) + b"\n"


def aibom_sha256(doc: dict[str, Any]) -> str:
    return sha256_hex(aibom_bytes(doc))
