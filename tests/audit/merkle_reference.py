"""The in-memory reference for RFC 9162 proof generation: every subtree root rehashed from the leaf list.
The ledger's store answers the same questions from stored nodes; the tests compare the two."""

from __future__ import annotations

from collections.abc import Sequence

from shared.merkle import SubtreeRoot, consistency_path, inclusion_path, root_from_leaf_hashes


def _in_memory(leaf_hashes: Sequence[bytes]) -> SubtreeRoot:
    def subtree_root(start: int, end: int) -> bytes:
        return root_from_leaf_hashes(leaf_hashes[start:end])

    return subtree_root


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Inclusion proof for leaf `index` in the tree over all of `leaf_hashes`."""
    return inclusion_path(index, len(leaf_hashes), _in_memory(leaf_hashes))


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """Consistency proof from the tree over leaf_hashes[:old_size] to the tree over all of leaf_hashes."""
    return consistency_path(old_size, len(leaf_hashes), _in_memory(leaf_hashes))
