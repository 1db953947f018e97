"""Full-ledger verification, streaming: recompute every entry hash, the chain, sequence contiguity, every
stored Merkle leaf and interior node, the root at every signed tree head and each head's signature, and
stop at the first problem (the earliest bad sequence number)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

from services.audit.domain.entries import GENESIS_PREV_HASH, entry_body
from services.audit.domain.tree_heads import SignedTreeHead
from shared.merkle import CompactRange

# (sequence, event_id, type, producer, actor, subject, occurred_at, trace_id, payload_sha256, prev_hash,
#  signature_key_id, signature_value, entry_hash, leaf_hash): the column order the store streams rows in.
EntryRow = tuple[int, str, str, str, str, str, str, str | None, str, str, str | None, str | None, str, bytes]


class Problem(StrEnum):
    SEQUENCE_GAP = "sequence_gap"  # an entry was removed
    PREV_HASH_MISMATCH = "prev_hash_mismatch"  # entries reordered, or one inserted
    ENTRY_HASH_MISMATCH = "entry_hash_mismatch"  # an entry's fields were altered
    LEAF_HASH_MISMATCH = "leaf_hash_mismatch"  # the stored Merkle leaf does not match the entry
    MERKLE_NODE_MISMATCH = "merkle_node_mismatch"  # a stored interior node (used for proofs) is wrong
    TREE_HEAD_ROOT_MISMATCH = "tree_head_root_mismatch"
    BAD_SIGNATURE = "bad_signature"
    ENTRIES_MISSING = "entries_missing"  # a signed head covers entries the ledger no longer holds
    MALFORMED_ENTRY = "malformed_entry"  # a stored field has a type the ledger never writes (a BLOB for text)
    MALFORMED_ROW = "malformed_row"  # a tree head or Merkle row does not parse, or leaves/nodes are missing
    LEDGER_UNREADABLE = "ledger_unreadable"  # the database or one of its tables cannot be read at all


class VerifyReport(BaseModel):
    ok: bool
    entries_checked: int
    tree_heads_checked: int
    signed_size: int
    unsigned_entries: int
    first_bad_sequence: int | None = None
    problem: Problem | None = None
    detail: str
    elapsed_s: float = 0.0
    entries_per_s: float = 0.0


class LedgerVerifier:
    """Feed rows in sequence order (in chunks), then call finish(). Stops at the first problem."""

    def __init__(
        self,
        heads: Sequence[SignedTreeHead],
        nodes: Mapping[tuple[int, int], bytes],
        public_key: Ed25519PublicKey,
        node_min_level: int,
    ) -> None:
        self._heads = sorted(heads, key=lambda head: head.tree_size)
        self._head_pos = 0
        self._nodes = nodes
        self._key = public_key
        self._node_min_level = node_min_level
        self._compact = CompactRange(on_node=self._check_node)
        self.size = 0
        self._prev_hash = GENESIS_PREV_HASH
        self.heads_checked = 0
        self.problem: Problem | None = None
        self.bad_sequence: int | None = None
        self.detail = ""
        self._check_heads_at(0)

    def _fail(self, sequence: int, problem: Problem, detail: str) -> bool:
        if self.problem is None:
            self.problem, self.bad_sequence, self.detail = problem, sequence, detail
        return False

    def _check_node(self, level: int, index: int, node: bytes) -> None:
        if level < self._node_min_level or self.problem is not None:
            return
        stored = self._nodes.get((level, index))
        if stored != node:
            what = "missing" if stored is None else f"stored {stored.hex()}, recomputed {node.hex()}"
            self._fail(
                ((index + 1) << level) - 1,
                Problem.MERKLE_NODE_MISMATCH,
                f"Merkle node level {level} index {index} (leaves {index << level}..{((index + 1) << level) - 1}):"
                f" {what}",
            )

    def _check_heads_at(self, size: int) -> bool:
        heads = self._heads
        while self._head_pos < len(heads) and heads[self._head_pos].tree_size == size:
            head = heads[self._head_pos]
            self._head_pos += 1
            self.heads_checked += 1
            problem = head.problem_with(self._key)
            if problem is not None:
                return self._fail(max(size - 1, 0), Problem.BAD_SIGNATURE, problem)
            root = self._compact.root().hex()
            if root != head.root_hash:
                return self._fail(
                    max(size - 1, 0),
                    Problem.TREE_HEAD_ROOT_MISMATCH,
                    f"tree head of size {size} signs root {head.root_hash}, the entries give {root}",
                )
        return True

    def _next_head_size(self) -> int:
        return self._heads[self._head_pos].tree_size if self._head_pos < len(self._heads) else -1

    def feed(self, rows: Iterable[EntryRow]) -> bool:
        """Check a chunk of rows; False as soon as a problem is found."""
        if self.problem is not None:
            return False
        expected, prev, compact = self.size, self._prev_hash, self._compact
        sha256 = hashlib.sha256
        head_at = self._next_head_size()
        try:
            for (
                seq,
                eid,
                typ,
                producer,
                actor,
                subject,
                occurred,
                trace,
                psha,
                prev_hash,
                key_id,
                sig,
                ehash,
                leaf,
            ) in rows:
                if seq != expected:
                    return self._fail(
                        expected,
                        Problem.SEQUENCE_GAP,
                        f"sequence {expected} is missing (next stored entry is {seq}): entries removed",
                    )
                if prev_hash != prev:
                    return self._fail(
                        seq,
                        Problem.PREV_HASH_MISMATCH,
                        f"entry {seq} links to {prev_hash}, but entry {seq - 1} hashes to {prev}:"
                        " entries reordered or inserted",
                    )
                try:
                    body = entry_body(
                        seq, eid, typ, producer, actor, subject, occurred, trace, psha, prev_hash, key_id, sig
                    )  # fmt: skip
                except (TypeError, ValueError):
                    # Only a hand-written row gets here (a BLOB where the ledger writes text): no hash can be
                    # recomputed, so the entry is reported, not the encoder's exception.
                    wrong = _wrong_types(eid, typ, producer, actor, subject, occurred, trace, psha, key_id, sig)
                    return self._fail(seq, Problem.MALFORMED_ENTRY, f"entry {seq}: {wrong}: entry altered")
                if sha256(body).hexdigest() != ehash:
                    return self._fail(
                        seq,
                        Problem.ENTRY_HASH_MISMATCH,
                        f"entry {seq} (event {eid}): stored entry_hash {ehash} does not match its fields:"
                        " entry altered",
                    )
                computed_leaf = sha256(b"\x00" + body).digest()
                if leaf != computed_leaf:
                    return self._fail(
                        seq, Problem.LEAF_HASH_MISMATCH, f"entry {seq}: stored Merkle leaf does not match the entry"
                    )
                compact.append_leaf_hash(computed_leaf)
                if self.problem is not None:
                    return False
                expected += 1
                prev = ehash
                if expected == head_at:
                    self.size, self._prev_hash = expected, prev
                    if not self._check_heads_at(expected):
                        return False
                    head_at = self._next_head_size()
        finally:
            if self.problem is None:
                self.size, self._prev_hash = expected, prev
        return True

    def finish(self, elapsed_s: float) -> VerifyReport:
        if self.problem is None and self._head_pos < len(self._heads):
            head = self._heads[self._head_pos]
            self._fail(
                self.size,
                Problem.ENTRIES_MISSING,
                f"a signed tree head covers {head.tree_size} entries but the ledger ends at {self.size}:"
                f" entries {self.size}..{head.tree_size - 1} removed",
            )
        signed = max((h.tree_size for h in self._heads[: self._head_pos]), default=0)
        ok = self.problem is None
        return VerifyReport(
            ok=ok,
            entries_checked=self.size,
            tree_heads_checked=self.heads_checked,
            signed_size=signed,
            unsigned_entries=max(self.size - signed, 0),
            first_bad_sequence=self.bad_sequence,
            problem=self.problem,
            detail=(f"{self.size} entries and {self.heads_checked} signed tree heads verified" if ok else self.detail),
            elapsed_s=round(elapsed_s, 4),
            entries_per_s=round(self.size / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        )


_TEXT_FIELDS = (
    "event_id", "type", "producer", "actor", "subject", "occurred_at", "trace_id", "payload_sha256",
    "signature_key_id", "signature_value",
)  # fmt: skip
_NULLABLE = frozenset({"trace_id", "signature_key_id", "signature_value"})


def _wrong_types(*values: object) -> str:
    """Which stored fields are not text (the ledger writes every one of them as text, some may be NULL)."""
    wrong = [
        f"{name} is {type(value).__name__}"
        for name, value in zip(_TEXT_FIELDS, values, strict=True)
        if not isinstance(value, str) and not (value is None and name in _NULLABLE)
    ]
    return ", ".join(wrong) + " (expected text)" if wrong else "a stored field cannot be encoded"
