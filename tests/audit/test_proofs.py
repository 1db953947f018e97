"""Proof documents from the ledger: generation over stored nodes matches the in-memory reference, documents
round-trip through JSON and verify offline with only the public key, and any alteration fails."""

from __future__ import annotations

import json
import random

import pytest

from services.audit.adapters.keys import Ed25519Signer
from services.audit.adapters.store import LedgerStore
from services.audit.application import LedgerService
from services.audit.domain.proofs import (
    ConsistencyProofDocument,
    InclusionProofDocument,
    verify_consistency_document,
    verify_proof_document,
)
from services.audit.domain.tree_heads import SignedTreeHead, TreeHead
from services.audit.ledger_proofs import ProofUnavailable
from shared.merkle import (
    consistency_path,
    inclusion_path,
    root_from_leaf_hashes,
)
from shared.security.keys import public_key_raw
from tests.audit.audit_support import envelope
from tests.audit.merkle_reference import consistency_proof, inclusion_proof


@pytest.fixture
def filled(ledger: LedgerService) -> tuple[LedgerService, list[str]]:
    events = [envelope(i) for i in range(1100)]  # > 4 * 256 leaves: stored nodes at levels 8 and 9 and 10
    for start in range(0, 1100, 250):
        ledger.append(events[start : start + 250])
        ledger.sign_now()
    return ledger, [e.event_id for e in events]


def test_store_proofs_match_the_in_memory_reference(filled: tuple[LedgerService, list[str]]) -> None:
    ledger, _ = filled
    store: LedgerStore = ledger.store
    with store.read() as conn:
        leaves = store.leaf_hashes(conn, 0, 1100)
        rng = random.Random(5)
        for size in [1, 255, 256, 257, 511, 512, 513, 1024, 1099, 1100, *rng.sample(range(1, 1101), 8)]:
            assert store.subtree_root(conn, 0, size) == root_from_leaf_hashes(leaves[:size])
            index = rng.randrange(size)
            stored = inclusion_path(index, size, lambda a, b: store.subtree_root(conn, a, b))
            assert stored == inclusion_proof(leaves[:size], index)
            old = rng.randint(0, size)
            assert consistency_path(old, size, lambda a, b: store.subtree_root(conn, a, b)) == consistency_proof(
                leaves[:size], old
            )


def test_inclusion_document_round_trip(filled: tuple[LedgerService, list[str]]) -> None:
    ledger, ids = filled
    for event_id in (ids[0], ids[511], ids[1099]):
        doc = ledger.proof_for(event_id)
        assert doc.tree_size == 1100 and doc.tree_head.tree_size == 1100
        restored = InclusionProofDocument.model_validate_json(doc.model_dump_json())
        check = verify_proof_document(restored, ledger.signer.public_key_pem)
        assert check.ok, check.detail
        assert verify_proof_document(restored, public_key_raw(ledger.signer.public_key)).ok


def _mutations(document: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
    """Every field of the document altered in turn (hex digits flipped, numbers off by one)."""
    out: list[tuple[str, dict[str, object]]] = []

    def walk(node: object, path: list[object]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, [*path, key])
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, [*path, i])
        elif isinstance(node, bool) or node is None:
            return
        elif isinstance(node, int):
            for delta in (-1, 1):
                out.append((f"{path}{delta:+d}", _set(document, path, node + delta)))
        elif isinstance(node, str) and path[-1] not in ("format", "public_key_pem"):
            flipped = ("0" if node[-1:] != "0" else "1") if node else "x"
            out.append((str(path), _set(document, path, node[:-1] + flipped)))
            if len(node) > 1:
                first = "1" if node[0] != "1" else "2"
                out.append((f"{path}[0]", _set(document, path, first + node[1:])))

    walk(document, [])
    return out


def _set(document: dict[str, object], path: list[object], value: object) -> dict[str, object]:
    copy = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def test_every_field_mutation_of_an_inclusion_document_fails(filled: tuple[LedgerService, list[str]]) -> None:
    ledger, ids = filled
    document = ledger.proof_for(ids[700]).model_dump(mode="json")
    mutations = _mutations(document)
    assert len(mutations) > 40
    for label, mutated in mutations:
        try:
            doc = InclusionProofDocument.model_validate(mutated)
        except ValueError:
            continue  # no longer a document at all: rejected
        assert not verify_proof_document(doc, ledger.signer.public_key_pem).ok, label


def test_a_foreign_key_or_embedded_forgery_fails(filled: tuple[LedgerService, list[str]]) -> None:
    ledger, ids = filled
    doc = ledger.proof_for(ids[3])
    other = Ed25519Signer.generate()
    assert not verify_proof_document(doc, other.public_key_pem).ok
    # A forger re-signs the head with their own key and embeds it: self-consistent, yet refused, because the
    # key inside a document is never the one checked against.
    statement = TreeHead(**doc.tree_head.model_dump(include=set(TreeHead.model_fields)) | {"log_id": other.log_id})
    head = SignedTreeHead(
        **statement.model_dump(),
        signature=other.sign(statement.signed_message()).hex(),
        checkpoint_signature=other.sign(statement.checkpoint().text()).hex(),
    )
    forged = doc.model_copy(update={"public_key_pem": other.public_key_pem, "tree_head": head})
    assert verify_proof_document(forged, other.public_key_pem).ok
    assert not verify_proof_document(forged, ledger.signer.public_key).ok
    assert not verify_proof_document(doc, b"not a key").ok


def test_consistency_documents(filled: tuple[LedgerService, list[str]]) -> None:
    ledger, _ = filled
    for old, new in ((250, 1100), (500, 750), (1, 1100), (0, 250), (1100, 1100), (257, 1000)):
        doc = ledger.consistency(old, new)
        check = verify_consistency_document(
            ConsistencyProofDocument.model_validate_json(doc.model_dump_json()), ledger.signer.public_key_pem
        )
        assert check.ok, (old, new, check.detail)
    signed = ledger.consistency(500, 1100)
    assert signed.old_head is not None and signed.new_head is not None
    for label, mutated in _mutations(signed.model_dump(mode="json")):
        try:
            doc = ConsistencyProofDocument.model_validate(mutated)
        except ValueError:
            continue
        assert not verify_consistency_document(doc, ledger.signer.public_key_pem).ok, label


def test_unavailable_proofs_say_why(ledger: LedgerService) -> None:
    with pytest.raises(ProofUnavailable, match="not in the audit ledger"):
        ledger.proof_for("no-such-event")
    event = envelope(1)
    ledger.append([event])
    with pytest.raises(ProofUnavailable, match="not yet covered by a signed tree head"):
        ledger.proof_for(event.event_id)
    with pytest.raises(ProofUnavailable, match=r"old \(2\) <= new \(1\)"):
        ledger.consistency(2, 1)
    with pytest.raises(ProofUnavailable, match=r"<= ledger size \(1\)"):
        ledger.consistency(0, 5)
