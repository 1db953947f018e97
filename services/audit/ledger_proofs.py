"""What the audit ledger proves to others and to itself: inclusion and consistency proof documents, the
full verification of a ledger (`tunegate audit verify`), a check against a checkpoint kept elsewhere, and the
latest checkpoint to hand out, which is only ever a head that verifies. Read-only over the store; the
appending side is application.py's LedgerService."""

from __future__ import annotations

import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel
from sqlalchemy import Connection

from services.audit.adapters.store import NODE_MIN_LEVEL, LedgerDamaged, LedgerStore
from services.audit.domain.checkpoints import CheckedCheckpoint, SignedNote
from services.audit.domain.proofs import (
    ConsistencyProofDocument,
    InclusionProofDocument,
    PublicKeyInput,
)
from services.audit.domain.tree_heads import SignedTreeHead, log_id_for
from services.audit.domain.verification import LedgerVerifier, Problem, VerifyReport
from shared.merkle import consistency_path, inclusion_path, verify_consistency
from shared.security.keys import load_public_key


class ProofUnavailable(LookupError):
    """A proof that cannot be produced (unknown event, unsigned entry, sizes out of range); says why."""


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
