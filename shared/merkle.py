"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing.

leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right); the tree over n entries
splits at the largest power of two smaller than n. Used by the audit ledger and for dataset fingerprints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class CompactRange:
    """Streaming root computation: O(log n) memory, so a 1 GB dataset or a 10M-entry ledger never sits in RAM.

    Keeps the roots of the perfect subtrees covering [0, size), largest first (the "frontier").
    `on_node(level, index, hash)` is told of every perfect subtree completed by an append (level >= 1),
    so a store can persist interior nodes and answer proofs without rehashing leaves."""

    def __init__(self, on_node: Callable[[int, int, bytes], None] | None = None) -> None:
        self.size = 0
        self._peaks: list[bytes] = []
        self.on_node = on_node

    def append_leaf_hash(self, leaf: bytes) -> None:
        self._peaks.append(leaf)
        self.size += 1
        merges = (self.size & -self.size).bit_length() - 1  # trailing zero bits = completed subtrees
        for level in range(1, merges + 1):
            right = self._peaks.pop()
            left = self._peaks.pop()
            node = node_hash(left, right)
            self._peaks.append(node)
            if self.on_node is not None:
                self.on_node(level, (self.size >> level) - 1, node)

    def append(self, entry: bytes) -> None:
        self.append_leaf_hash(leaf_hash(entry))

    def root(self) -> bytes:
        if not self._peaks:
            return EMPTY_ROOT
        acc = self._peaks[-1]
        for peak in reversed(self._peaks[:-1]):
            acc = node_hash(peak, acc)
        return acc

    def peaks(self) -> list[bytes]:
        return list(self._peaks)

    @classmethod
    def from_peaks(
        cls, size: int, peaks: Sequence[bytes], on_node: Callable[[int, int, bytes], None] | None = None
    ) -> CompactRange:
        if len(peaks) != bin(size).count("1"):
            raise ValueError(f"a tree of size {size} has {bin(size).count('1')} peaks, got {len(peaks)}")
        compact = cls(on_node)
        compact.size = size
        compact._peaks = list(peaks)
        return compact


def root_from_leaf_hashes(leaves: Iterable[bytes]) -> bytes:
    compact = CompactRange()
    for leaf in leaves:
        compact.append_leaf_hash(leaf)
    return compact.root()


def merkle_root(entries: Iterable[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 section 2.1.1 over the raw entries."""
    return root_from_leaf_hashes(leaf_hash(entry) for entry in entries)


# ---------------------------------------------------------------- proofs (RFC 9162 sections 2.1.3 and 2.1.4)
#
# Generation works on any storage through a `subtree_root(start, end)` callback returning MTH(D[start:end]);
# it is only ever asked for ranges that are subtrees of the tree (start aligned to a power of two >= end -
# start), so a store can answer from cached perfect-subtree nodes instead of rehashing every leaf.

SubtreeRoot = Callable[[int, int], bytes]


def _split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Decompose [start, end) into aligned perfect subtrees, largest first, as (level, index) pairs: the
    subtree (level, index) covers leaves [index << level, (index + 1) << level). For [0, n) these are the
    peaks of the compact range; MTH of a tree range is the right fold of their roots."""
    if not 0 <= start <= end:
        raise ValueError(f"invalid leaf range [{start}, {end})")
    chunks: list[tuple[int, int]] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        chunks.append((level, start >> level))
        start += 1 << level
    return chunks


def fold_subtree_roots(roots: Sequence[bytes]) -> bytes:
    """Root of a range from the roots of its perfect subtrees (largest first)."""
    if not roots:
        return EMPTY_ROOT
    acc = roots[-1]
    for peak in reversed(roots[:-1]):
        acc = node_hash(peak, acc)
    return acc


def inclusion_path(index: int, size: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1, ordered from the leaf's sibling up to the root's child."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    siblings: list[bytes] = []
    start, n, m = 0, size, index
    while n > 1:
        k = _split_point(n)
        if m < k:
            siblings.append(subtree_root(start + k, start + n))
            n = k
        else:
            siblings.append(subtree_root(start, start + k))
            start, n, m = start + k, n - k, m - k
    siblings.reverse()
    return siblings


def consistency_path(old_size: int, new_size: int, subtree_root: SubtreeRoot) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1; empty when old_size is 0 or equals new_size."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    nodes: list[bytes] = []
    start, n, m, complete = 0, new_size, old_size, True
    while m != n:
        k = _split_point(n)
        if m <= k:
            nodes.append(subtree_root(start + k, start + n))
            n = k
        else:
            nodes.append(subtree_root(start, start + k))
            start, n, m, complete = start + k, n - k, m - k, False
    if not complete:
        nodes.append(subtree_root(start, start + n))
    nodes.reverse()
    return nodes


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """RFC 9162 2.1.3.2 steps 1-5: the root implied by the path, or None when the path cannot belong to
    a tree of that size (wrong length or index out of range)."""
    if not 0 <= index < size or len(leaf) != 32:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0 or len(p) != 32:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """True iff `path` proves that the leaf hash `leaf` sits at `index` in the tree of `size` with `root`."""
    return root_from_inclusion_proof(leaf, index, size, path) == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]) -> bool:
    """RFC 9162 2.1.4.2: True iff `path` proves the tree (old_size, old_root) is a prefix of (new_size,
    new_root). Size 0 is consistent with anything (empty proof); equal sizes need equal roots."""
    if not 0 <= old_size <= new_size:
        return False
    if any(len(p) != 32 for p in path):
        return False
    if old_size == 0:
        return not path
    if old_size == new_size:
        return not path and old_root == new_root
    if not path:
        return False
    nodes = list(path)
    if old_size & (old_size - 1) == 0:  # exact power of two: the old root is itself a node of the new tree
        nodes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
