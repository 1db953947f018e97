"""The log's public key is accepted in every form an auditor may hold it (PEM, raw 32 bytes, hex), decided by
content: a raw key whose first or last byte looks like whitespace must work too (about one key in twenty),
both in the library and through `tunegate audit verify-proof --public-key FILE`."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from services.audit.adapters.keys import Ed25519Signer
from services.audit.adapters.store import LedgerStore
from services.audit.application import LedgerService
from services.audit.domain.proofs import verify_proof_document
from shared.config import Settings
from shared.security.keys import PublicKeyError, load_public_key, public_key_pem, public_key_raw
from tests.audit.audit_support import audit_cli_app, envelope

WHITESPACE_BYTES = b" \t\n\r\x0b\x0c"
KEYS = 500


def _key_with(predicate: object) -> Ed25519PrivateKey:
    assert callable(predicate)
    for _ in range(20_000):
        key = Ed25519PrivateKey.generate()
        if predicate(public_key_raw(key.public_key())):
            return key
    raise AssertionError("no key with the wanted raw bytes in 20000 tries")


def _generated_keys() -> list[Ed25519PrivateKey]:
    keys = [Ed25519PrivateKey.generate() for _ in range(KEYS)]
    # Make sure the troublesome shapes are present, whatever the random draw.
    keys.append(_key_with(lambda raw: raw[0] in WHITESPACE_BYTES))
    keys.append(_key_with(lambda raw: raw[-1] in WHITESPACE_BYTES))
    keys.append(_key_with(lambda raw: raw[0] in WHITESPACE_BYTES and raw[-1] in WHITESPACE_BYTES))
    return keys


def test_every_generated_key_loads_in_all_three_forms() -> None:
    edge_cases = 0
    for private in _generated_keys():
        public = private.public_key()
        raw = public_key_raw(public)
        edge_cases += raw[0] in WHITESPACE_BYTES or raw[-1] in WHITESPACE_BYTES
        forms: dict[str, bytes | str] = {
            "raw": raw,
            "pem": public_key_pem(public),
            "pem bytes with trailing newline": public_key_pem(public).encode() + b"\n",
            "hex": raw.hex(),
            "HEX with newline": raw.hex().upper().encode() + b"\n",
        }
        for form, data in forms.items():
            assert public_key_raw(load_public_key(data)) == raw, (form, raw.hex())
    assert edge_cases >= 3


def test_signatures_check_against_every_form_of_the_key(ledger: LedgerService) -> None:
    events = [envelope(i) for i in range(5)]
    ledger.append(events)
    ledger.sign_now()
    doc = ledger.proof_for(events[2].event_id)
    public = ledger.signer.public_key
    for form in (public_key_raw(public), public_key_pem(public), public_key_raw(public).hex()):
        check = verify_proof_document(doc, form)
        assert check.ok, check.detail


def test_malformed_keys_say_why() -> None:
    with pytest.raises(PublicKeyError, match="expected PEM, 32 raw bytes or 64 hex"):
        load_public_key(b"\x01" * 31)
    with pytest.raises(PublicKeyError, match="expected PEM, 32 raw bytes or 64 hex"):
        load_public_key("zz" * 32)
    with pytest.raises(PublicKeyError, match="PEM cannot be parsed"):
        load_public_key("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")


@pytest.mark.parametrize(
    "shape",
    [
        lambda raw: raw[0] in WHITESPACE_BYTES,
        lambda raw: raw[-1] in WHITESPACE_BYTES,
    ],
    ids=["first-byte-whitespace", "last-byte-whitespace"],
)
def test_cli_verify_proof_with_a_raw_key_file(
    shape: object, tmp_path: Path, store: LedgerStore, settings: Settings
) -> None:

    signer = Ed25519Signer(_key_with(shape))
    ledger = LedgerService(store, signer, settings)
    events = [envelope(i) for i in range(9)]
    ledger.append(events)
    ledger.sign_now()
    proof = tmp_path / "proof.json"
    proof.write_text(ledger.proof_for(events[4].event_id).model_dump_json())
    for name, data in (
        ("raw.key", public_key_raw(signer.public_key)),
        ("hex.key", public_key_raw(signer.public_key).hex().encode() + b"\n"),
        ("pem.key", signer.public_key_pem.encode()),
    ):
        key_file = tmp_path / name
        key_file.write_bytes(data)
        app = audit_cli_app()
        result = CliRunner().invoke(app, ["audit", "verify-proof", str(proof), "--public-key", str(key_file)])
        assert result.exit_code == 0, (name, result.output)
        assert "entry 4 of the signed tree of size 9" in result.output
