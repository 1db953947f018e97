"""RFC 9162 Merkle proofs: known-answer vectors (transparency-dev/merkle testonly), random properties, and
single-bit mutations that must all be rejected."""

from __future__ import annotations

import random

import pytest

from shared.merkle import (
    CompactRange,
    leaf_hash,
    merkle_root,
    perfect_subtrees,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from tests.audit.merkle_reference import consistency_proof, inclusion_proof

LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
INCLUSION = [  # (index, size, path) from transparency-dev/merkle testonly/reference_test.go
    (0, 1, []),
    (0, 2, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (1, 2, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
CONSISTENCY = [  # (old, new, path)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
LEAF_HASHES = [leaf_hash(x) for x in LEAVES]


def _root(size: int) -> bytes:
    return bytes.fromhex(ROOTS[size])


@pytest.mark.parametrize("size", range(9))
def test_roots_match_reference(size: int) -> None:
    assert merkle_root(LEAVES[:size]).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_known_answers(index: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(LEAF_HASHES[:size], index)
    assert [p.hex() for p in proof] == path
    assert verify_inclusion(LEAF_HASHES[index], index, size, proof, _root(size))


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_known_answers(old: int, new: int, path: list[str]) -> None:
    proof = consistency_proof(LEAF_HASHES[:new], old)
    assert [p.hex() for p in proof] == path
    assert verify_consistency(old, new, _root(old), _root(new), proof)


def test_every_inclusion_and_consistency_over_the_vectors() -> None:
    for size in range(1, 9):
        for index in range(size):
            proof = inclusion_proof(LEAF_HASHES[:size], index)
            assert verify_inclusion(LEAF_HASHES[index], index, size, proof, _root(size))
        for old in range(0, size + 1):
            proof = consistency_proof(LEAF_HASHES[:size], old)
            assert verify_consistency(old, size, _root(old), _root(size), proof)


def test_random_sizes_verify_against_merkle_root() -> None:
    rng = random.Random(9162)
    for _ in range(60):
        size = rng.randint(1, 300)
        entries = [rng.randbytes(rng.randint(0, 12)) for _ in range(size)]
        leaves = [leaf_hash(e) for e in entries]
        root = merkle_root(entries)
        index = rng.randrange(size)
        assert verify_inclusion(leaves[index], index, size, inclusion_proof(leaves, index), root)
        old = rng.randint(0, size)
        old_root = merkle_root(entries[:old])
        assert verify_consistency(old, size, old_root, root, consistency_proof(leaves, old))
        # A proof for one tree never verifies against a different tree of the same size.
        other = list(leaves)
        other[index] = leaf_hash(b"forged")
        assert not verify_inclusion(other[index], index, size, inclusion_proof(other, index), root)


def _flip(data: bytes, bit: int) -> bytes:
    mutated = bytearray(data)
    mutated[bit // 8] ^= 1 << (bit % 8)
    return bytes(mutated)


def test_every_single_bit_mutation_of_an_inclusion_proof_fails() -> None:
    # Sizes are not committed to by a Merkle root, only by the signed tree head: an off-by-one size with
    # the same tree shape verifies (see test_size_is_bound_only_by_the_tree_head), so these parameters
    # are ones where every off-by-one changes the shape.
    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(13)]
    index, size = 12, 13
    root = root_from_leaf_hashes(leaves)
    path = inclusion_proof(leaves, index)
    assert verify_inclusion(leaves[index], index, size, path, root)
    for i in range(len(path)):
        for bit in range(256):
            bad = list(path)
            bad[i] = _flip(path[i], bit)
            assert not verify_inclusion(leaves[index], index, size, bad, root), (i, bit)
    for bit in range(256):
        assert not verify_inclusion(leaves[index], index, size, path, _flip(root, bit))
        assert not verify_inclusion(_flip(leaves[index], bit), index, size, path, root)
    for bad_index in (index - 1, index + 1, index ^ 1, index ^ 2, index ^ 4, index ^ 8):
        assert not verify_inclusion(leaves[index], bad_index, size, path, root), bad_index
    for bad_size in (size - 1, size + 1):
        assert not verify_inclusion(leaves[index], index, bad_size, path, root), bad_size
    assert not verify_inclusion(leaves[index], index, size, path[:-1], root)
    assert not verify_inclusion(leaves[index], index, size, [*path, path[0]], root)


def test_every_single_bit_mutation_of_a_consistency_proof_fails() -> None:
    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(20)]
    old, new = 19, 20
    old_root, new_root = root_from_leaf_hashes(leaves[:old]), root_from_leaf_hashes(leaves)
    path = consistency_proof(leaves, old)
    assert verify_consistency(old, new, old_root, new_root, path)
    for i in range(len(path)):
        for bit in range(256):
            bad = list(path)
            bad[i] = _flip(path[i], bit)
            assert not verify_consistency(old, new, old_root, new_root, bad), (i, bit)
    for bit in range(256):
        assert not verify_consistency(old, new, _flip(old_root, bit), new_root, path)
        assert not verify_consistency(old, new, old_root, _flip(new_root, bit), path)
    for bad_old, bad_new in ((old - 1, new), (old + 1, new), (old, new - 1), (old, new + 1)):
        assert not verify_consistency(bad_old, bad_new, old_root, new_root, path), (bad_old, bad_new)
    assert not verify_consistency(old, new, old_root, new_root, path[:-1])
    assert not verify_consistency(old, new, old_root, new_root, [*path, path[0]])
    assert not verify_consistency(new, old, new_root, old_root, path)


def test_size_is_bound_only_by_the_tree_head() -> None:
    # Why tree heads sign tree_size: the RFC 9162 check is structural, so a size with the same shape passes.
    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(13)]
    path = inclusion_proof(leaves, 9)
    assert verify_inclusion(leaves[9], 9, 14, path, root_from_leaf_hashes(leaves))


def test_malformed_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="outside a tree of size 3"):
        inclusion_proof(LEAF_HASHES[:3], 3)
    with pytest.raises(ValueError, match="no consistency proof from size 4 to size 3"):
        consistency_proof(LEAF_HASHES[:3], 4)
    assert not verify_inclusion(LEAF_HASHES[0], 0, 0, [], _root(0))
    assert not verify_inclusion(LEAF_HASHES[0], 0, 2, [b"short"], _root(2))


def test_compact_range_reports_every_completed_node() -> None:
    nodes: dict[tuple[int, int], bytes] = {}
    compact = CompactRange(on_node=lambda level, index, node: nodes.__setitem__((level, index), node))
    for leaf in LEAF_HASHES:
        compact.append_leaf_hash(leaf)
    assert sorted(nodes) == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1), (3, 0)]
    assert nodes[(1, 2)].hex() == "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
    assert nodes[(2, 1)].hex() == "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
    assert nodes[(3, 0)].hex() == ROOTS[8]
    assert perfect_subtrees(0, 7) == [(2, 0), (1, 2), (0, 6)]
    assert perfect_subtrees(8, 13) == [(2, 2), (0, 12)]
