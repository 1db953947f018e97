"""Portable proof documents: everything needed to check an entry's inclusion, or the consistency of two
tree sizes, offline with nothing but the log's public key."""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from services.audit.domain.entries import HEX64, LedgerEntry
from services.audit.domain.tree_heads import SignedTreeHead
from shared.merkle import EMPTY_ROOT, verify_consistency, verify_inclusion
from shared.security.keys import PublicKeyError, load_public_key

INCLUSION_FORMAT = "tunegate.audit.inclusion-proof/v1"
CONSISTENCY_FORMAT = "tunegate.audit.consistency-proof/v1"

PublicKeyInput = Ed25519PublicKey | bytes | str

# Proof documents come from outside: strict, so "30" or 30.0 for a size is refused, not quietly coerced into
# what a forger meant it to be (the nested entry and tree head models are strict too).
DOCUMENT_CONFIG = ConfigDict(extra="forbid", strict=True)


class InclusionProofDocument(BaseModel):
    model_config = DOCUMENT_CONFIG

    format: Literal["tunegate.audit.inclusion-proof/v1"] = INCLUSION_FORMAT
    entry: LedgerEntry
    leaf_index: int = Field(ge=0)
    tree_size: int = Field(ge=1)
    audit_path: list[str] = Field(description="RFC 9162 inclusion path, leaf's sibling first, hex.")
    tree_head: SignedTreeHead
    public_key_pem: str = Field(description="The log's Ed25519 public key: informative only, never trusted.")


class ConsistencyProofDocument(BaseModel):
    model_config = DOCUMENT_CONFIG

    format: Literal["tunegate.audit.consistency-proof/v1"] = CONSISTENCY_FORMAT
    old_size: int = Field(ge=0)
    new_size: int = Field(ge=0)
    old_root: str = Field(pattern=HEX64)
    new_root: str = Field(pattern=HEX64)
    consistency_path: list[str]
    old_head: SignedTreeHead | None = Field(default=None, description="Signed head of old_size, if one exists.")
    new_head: SignedTreeHead | None = Field(default=None, description="Signed head of new_size, if one exists.")
    public_key_pem: str


class ProofCheck(BaseModel):
    ok: bool
    detail: str


def _key(public_key: PublicKeyInput) -> Ed25519PublicKey:
    # The key inside the document is never trusted: anyone can embed their own key and sign their own head.
    return public_key if isinstance(public_key, Ed25519PublicKey) else load_public_key(public_key)


def _hashes(values: list[str], what: str) -> list[bytes] | str:
    decoded: list[bytes] = []
    for position, value in enumerate(values):
        try:
            node = bytes.fromhex(value)
        except ValueError:
            return f"{what}[{position}] is not hex"
        if len(node) != 32:
            return f"{what}[{position}] is {len(node)} bytes, expected 32"
        decoded.append(node)
    return decoded


def verify_proof_document(doc: InclusionProofDocument, public_key: PublicKeyInput) -> ProofCheck:
    """Recompute the entry hash and leaf from the entry's fields, walk the audit path to the signed root,
    and check the head's signatures with `public_key`, the log's key the caller trusts."""
    try:
        key = _key(public_key)
    except PublicKeyError as exc:
        return ProofCheck(ok=False, detail=str(exc))

    def result(ok: bool, detail: str) -> ProofCheck:
        return ProofCheck(ok=ok, detail=detail)

    entry = doc.entry
    if entry.computed_hash() != entry.entry_hash:
        return result(False, f"entry {entry.sequence}: entry_hash does not match the entry's fields")
    if doc.leaf_index != entry.sequence:
        return result(False, f"leaf_index {doc.leaf_index} is not the entry's sequence {entry.sequence}")
    if doc.tree_size != doc.tree_head.tree_size:
        return result(False, f"tree_size {doc.tree_size} differs from the signed head's {doc.tree_head.tree_size}")
    signature_problem = doc.tree_head.problem_with(key)
    if signature_problem is not None:
        return result(False, signature_problem)
    path = _hashes(doc.audit_path, "audit_path")
    if isinstance(path, str):
        return result(False, path)
    if not verify_inclusion(
        entry.leaf_hash(), doc.leaf_index, doc.tree_size, path, bytes.fromhex(doc.tree_head.root_hash)
    ):
        return result(
            False,
            f"audit path does not lead from entry {entry.sequence} to the signed root of size {doc.tree_size}",
        )
    return result(
        True,
        f"event {entry.event_id} is entry {entry.sequence} of the signed tree of size {doc.tree_size}"
        f" (root {doc.tree_head.root_hash}, signed {doc.tree_head.timestamp})",
    )


def verify_consistency_document(doc: ConsistencyProofDocument, public_key: PublicKeyInput) -> ProofCheck:
    """Check that a signed head of new_size, verified with `public_key` (the log's key the caller trusts), signs
    exactly new_root, that the old head (when included) signs exactly old_root, and the consistency path
    between the two roots. Without a signed new head the document proves nothing about the log: anyone can
    make up a root that extends any tree, so it fails rather than passing on the document's word."""
    try:
        key = _key(public_key)
    except PublicKeyError as exc:
        return ProofCheck(ok=False, detail=str(exc))

    def result(ok: bool, detail: str) -> ProofCheck:
        return ProofCheck(ok=ok, detail=detail)

    if doc.new_head is None:
        unbound = (
            "no signed head binds these roots (the document has neither old_head nor new_head)"
            if doc.old_head is None
            else f"no signed head of size {doc.new_size} binds the new root (the document has no new_head)"
        )
        return result(False, f"{unbound}: the roots are only the document's word, so nothing was verified")
    for label, head, size, root in (
        ("old", doc.old_head, doc.old_size, doc.old_root),
        ("new", doc.new_head, doc.new_size, doc.new_root),
    ):
        if head is None:
            continue
        if head.tree_size != size or head.root_hash != root:
            return result(False, f"{label} signed head ({head.tree_size}, {head.root_hash}) is not ({size}, {root})")
        problem = head.problem_with(key)
        if problem is not None:
            return result(False, f"{label} head: {problem}")
    if doc.old_size == 0 and doc.old_root != EMPTY_ROOT.hex():
        # RFC 9162 proves nothing about size 0 (the path is empty), so its root must be the empty tree's.
        return result(False, f"old_root {doc.old_root} is not the empty tree's root {EMPTY_ROOT.hex()}")
    path = _hashes(doc.consistency_path, "consistency_path")
    if isinstance(path, str):
        return result(False, path)
    if not verify_consistency(
        doc.old_size, doc.new_size, bytes.fromhex(doc.old_root), bytes.fromhex(doc.new_root), path
    ):
        return result(False, f"tree of size {doc.old_size} is not proven a prefix of the tree of size {doc.new_size}")
    checked = "old, new" if doc.old_head is not None else f"new; the root of size {doc.old_size} is bound by the path"
    return result(
        True,
        f"tree {doc.old_size} is a prefix of tree {doc.new_size} (signed heads checked: {checked};"
        f" new head signed {doc.new_head.timestamp})",
    )
