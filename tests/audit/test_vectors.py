"""Golden vectors (tests/audit/vectors/, made by tests/audit/make_vectors.py): they are reproduced byte for byte
by the current code, they verify, every single changed byte makes them fail, and the worked example in
docs/ledger-format.md is the one these vectors hold, recomputed here with nothing but hashlib and an Ed25519
library, as an outside auditor would."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError
from typer.testing import CliRunner

from services.audit.domain.checkpoints import NoteError, NoteVerifier, open_checkpoint
from services.audit.domain.proofs import (
    ConsistencyProofDocument,
    InclusionProofDocument,
    verify_consistency_document,
    verify_proof_document,
)
from shared.merkle import verify_consistency, verify_inclusion
from tests.audit.audit_support import audit_cli_app
from tests.audit.make_vectors import (
    DOC_PATH,
    VECTORS_DIR,
    build_vectors,
    render_worked_example,
    with_worked_example,
)


def _vector(name: str) -> bytes:
    return (VECTORS_DIR / name).read_bytes()


def _worked() -> dict[str, object]:
    return json.loads(_vector("worked-example.json"))


def test_vectors_are_reproduced_byte_for_byte() -> None:
    built = build_vectors()
    assert sorted(built) == sorted(p.name for p in VECTORS_DIR.iterdir())
    for name, data in built.items():
        assert _vector(name) == data, f"{name} changed: regenerate with tests/audit/make_vectors.py and update the docs"


def test_vectors_verify() -> None:
    log_key = _vector("log.pub")
    inclusion = InclusionProofDocument.model_validate_json(_vector("inclusion-proof.json"))
    assert verify_proof_document(inclusion, log_key).ok
    consistency = ConsistencyProofDocument.model_validate_json(_vector("consistency-proof.json"))
    assert verify_consistency_document(consistency, log_key).ok
    log = NoteVerifier.parse(_vector("log.vkey").decode())
    witness = NoteVerifier.parse(_vector("witness.vkey").decode())
    assert open_checkpoint(_vector("checkpoint.txt"), log).checkpoint.tree_size == 6
    checked = open_checkpoint(_vector("checkpoint-cosigned.txt"), log, [witness], 1)
    assert checked.cosigned_by == ("witness.example/w1",)


def test_vectors_verify_with_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:


    monkeypatch.setenv("TUNEGATE_HOME", str(tmp_path))
    app = audit_cli_app()
    for document in ("inclusion-proof.json", "consistency-proof.json"):
        for key in ("log.pub", "log.vkey"):
            args = ["audit", "verify-proof", str(VECTORS_DIR / document), "--public-key", str(VECTORS_DIR / key)]
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, (document, key, result.output)


def _mutants(data: bytes, skip: range | None = None) -> list[tuple[int, bytes]]:
    out = []
    for position in range(len(data)):
        if skip is not None and position in skip:
            continue
        replacement = b"0" if data[position] != ord("0") else b"1"
        out.append((position, data[:position] + replacement + data[position + 1 :]))
    return out


def _embedded_key_span(data: bytes) -> range:
    """The value of public_key_pem: informative only (never trusted), so changing it changes nothing."""
    start = data.index(b'"public_key_pem": "') + len(b'"public_key_pem": "')
    return range(start, data.index(b'"', start))


@pytest.mark.parametrize(
    ("name", "model", "check"),
    [
        ("inclusion-proof.json", InclusionProofDocument, verify_proof_document),
        ("consistency-proof.json", ConsistencyProofDocument, verify_consistency_document),
    ],
)
def test_every_changed_byte_of_a_proof_document_fails(name: str, model: type, check: object) -> None:
    assert callable(check)
    data = _vector(name)
    log_key = _vector("log.pub")
    mutants = _mutants(data, skip=_embedded_key_span(data))
    assert len(mutants) > 1000
    for position, mutant in mutants:
        try:
            document = model.model_validate_json(mutant)
        except ValidationError:
            continue
        assert not check(document, log_key).ok, f"{name}: byte {position} changed and the proof still verifies"


@pytest.mark.parametrize("name", ["checkpoint.txt", "checkpoint-cosigned.txt"])
def test_every_changed_byte_of_a_checkpoint_fails(name: str) -> None:
    data = _vector(name)
    log = NoteVerifier.parse(_vector("log.vkey").decode())
    witness = NoteVerifier.parse(_vector("witness.vkey").decode())
    required = 1 if "cosigned" in name else 0
    for position, mutant in _mutants(data):
        with pytest.raises(NoteError):
            open_checkpoint(mutant, log, [witness], required)
            pytest.fail(f"{name}: byte {position} changed and the checkpoint still verifies")


def test_worked_example_recomputed_from_first_principles() -> None:
    worked = _worked()
    body = str(worked["entry_body"]).encode()
    assert hashlib.sha256(body).hexdigest() == worked["entry_hash"]
    leaf = hashlib.sha256(b"\x00" + body).digest()
    assert leaf.hex() == worked["leaf_hash"]
    payload = str(worked["payload_canonical_json"]).encode()
    fields = worked["entry_fields"]
    assert isinstance(fields, dict)
    assert hashlib.sha256(payload).hexdigest() == fields["payload_sha256"]

    inclusion = json.loads(_vector("inclusion-proof.json"))
    root = bytes.fromhex(inclusion["tree_head"]["root_hash"])
    path = [bytes.fromhex(node) for node in inclusion["audit_path"]]
    assert verify_inclusion(leaf, inclusion["leaf_index"], inclusion["tree_size"], path, root)

    log_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(worked["log_public_key_hex"])))
    assert hashlib.sha256(bytes.fromhex(str(worked["log_public_key_hex"]))).hexdigest() == worked["log_id"]
    log_key.verify(bytes.fromhex(str(worked["tree_head_signature"])), str(worked["tree_head_signed_message"]).encode())
    checkpoint_text = str(worked["checkpoint_text"]).encode()
    log_key.verify(bytes.fromhex(str(worked["checkpoint_signature"])), checkpoint_text)
    assert checkpoint_text.split(b"\n")[2] == base64.b64encode(root)

    producer = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(worked["producer_public_key_hex"])))
    signature = worked["envelope_signature"]
    assert isinstance(signature, dict)
    producer.verify(base64.b64decode(signature["value"]), str(worked["envelope_signing_bytes"]).encode())

    consistency = json.loads(_vector("consistency-proof.json"))
    assert verify_consistency(
        consistency["old_size"],
        consistency["new_size"],
        bytes.fromhex(consistency["old_root"]),
        bytes.fromhex(consistency["new_root"]),
        [bytes.fromhex(node) for node in consistency["consistency_path"]],
    )


def test_docs_show_the_worked_example_of_these_vectors() -> None:
    doc = DOC_PATH.read_text()
    section = render_worked_example(_worked(), _vector("checkpoint-cosigned.txt"))
    assert with_worked_example(doc, section) == doc, (
        "docs/ledger-format.md's worked example differs from the vectors: run tests/audit/make_vectors.py"
    )
    worked = _worked()
    for key in ("entry_body", "entry_hash", "leaf_hash", "tree_head_signed_message", "checkpoint_text"):
        assert str(worked[key]) in doc
