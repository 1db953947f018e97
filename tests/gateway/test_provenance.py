"""Response provenance: the gateway's signature over (model version, response sha256, event id)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.gateway.adapters.provenance_keys import provenance_signer, trusted_gateway_keys
from services.gateway.domain.provenance import (
    DOMAIN_TAG,
    BadSignature,
    MalformedProvenance,
    Provenance,
    ProvenanceSigner,
    TextMismatch,
    WrongKey,
    parse_body,
    parse_header,
    response_provenance,
    response_sha256,
    response_text,
    statement_bytes,
    verify,
)
from shared.security.keys import key_id_for
from shared.security.signing import KeyDirectory

TEXT = "Your order 4711 ships on Monday. <EMAIL_ADDRESS> was redacted. Grüße ✓"
EVENT = "0192f0c4-7b1e-7a3c-9d2e-4f5a6b7c8d9e"
VERSION = "support-triage.v3"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def signed(key: Ed25519PrivateKey, text: str = TEXT, version: str = VERSION) -> str:
    return ProvenanceSigner(key).header(version, response_sha256(text), EVENT)


def test_round_trip_header_and_body(key: Ed25519PrivateKey) -> None:
    header = signed(key)
    assert header.startswith("v=1; key=" + key_id_for(key.public_key()) + "; version=support-triage.v3; sha256=")
    provenance = parse_header(header)
    assert (provenance.model_version, provenance.event_id) == (VERSION, EVENT)
    assert provenance.response_sha256 == response_sha256(TEXT)
    verify(provenance, key.public_key(), TEXT)
    verify(provenance, key.public_key())  # without text: the statement alone
    # The body field mirrors the header and parses to the same statement.
    assert parse_body(provenance.body_value()) == provenance
    assert provenance.header_value() == header


def test_hash_is_utf8_of_the_text() -> None:
    import hashlib

    assert response_sha256(TEXT) == hashlib.sha256(TEXT.encode("utf-8")).hexdigest()
    assert response_sha256("") == hashlib.sha256(b"").hexdigest()


def test_statement_is_domain_separated_canonical_json() -> None:
    data = statement_bytes("m.v1", "ab" * 32, "e1")
    assert data == DOMAIN_TAG + b'{"event_id":"e1","model_version":"m.v1","response_sha256":"' + b"ab" * 32 + b'"}'


def test_names_with_header_syntax_survive_encoding(key: Ed25519PrivateKey) -> None:
    version = "odd; name=with spaces/ü"
    header = signed(key, version=version)
    assert header.count(";") == 5 and " name" not in header
    provenance = parse_header(header)
    assert provenance.model_version == version
    verify(provenance, key.public_key(), TEXT)


def test_tampered_text_is_a_text_mismatch(key: Ed25519PrivateKey) -> None:
    provenance = parse_header(signed(key))
    with pytest.raises(TextMismatch, match="text was altered"):
        verify(provenance, key.public_key(), TEXT.replace("Monday", "Friday"))


def test_tampered_version_hash_or_event_is_a_bad_signature(key: Ed25519PrivateKey) -> None:
    provenance = parse_header(signed(key))
    other_hash = response_sha256("something else")
    for change in ({"version": "support-triage.v4"}, {"sha256": other_hash}, {"event": "another-event"}):
        tampered = provenance.model_copy(update=change)
        with pytest.raises(BadSignature, match="altered"):
            verify(tampered, key.public_key())
    # And through the header text too.
    header = signed(key).replace("version=support-triage.v3", "version=support-triage.v9")
    with pytest.raises(BadSignature):
        verify(parse_header(header), key.public_key(), TEXT)


def test_flipped_signature_bit_is_a_bad_signature(key: Ed25519PrivateKey) -> None:
    provenance = parse_header(signed(key))
    raw = bytearray(provenance.signature_bytes())
    raw[10] ^= 0x01
    forged = provenance.model_copy(update={"sig": base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()})
    with pytest.raises(BadSignature):
        verify(forged, key.public_key(), TEXT)


def test_other_key_is_a_wrong_key(key: Ed25519PrivateKey) -> None:
    provenance = parse_header(signed(key))
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(WrongKey, match=key_id_for(other)):
        verify(provenance, other, TEXT)
    # A statement relabelled with the other key's id still fails: on the signature.
    relabelled = provenance.model_copy(update={"key": key_id_for(other)})
    with pytest.raises(BadSignature):
        verify(relabelled, other, TEXT)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("", "is not name=value"),
        ("garbage", "is not name=value"),
        ("v=1; key=0123456789abcdef", "missing version, sha256, event, sig"),
        ("v=2; key=0123456789abcdef; version=m; sha256=" + "a" * 64 + "; event=e; sig=" + "A" * 86, "version '2'"),
        ("v=1; key=XYZ; version=m; sha256=" + "a" * 64 + "; event=e; sig=" + "A" * 86, "key"),
        ("v=1; key=0123456789abcdef; version=m; sha256=short; event=e; sig=" + "A" * 86, "sha256"),
        ("v=1; key=0123456789abcdef; version=m; sha256=" + "a" * 64 + "; event=e; sig=not+base64url", "sig"),
        ("v=1; v=1; key=0123456789abcdef", "given twice"),
        ("v=1; colour=red", "unknown field 'colour'"),
        ("v=1; key=0123456789abcdef; version=%FF; sha256=" + "a" * 64 + "; event=e; sig=" + "A" * 86, "UTF-8"),
    ],
)
def test_malformed_headers_are_refused_with_the_reason(header: str, reason: str) -> None:
    with pytest.raises(MalformedProvenance, match=reason.replace("+", r"\+")):
        parse_header(header)


def test_malformed_body_field() -> None:
    with pytest.raises(MalformedProvenance, match="expected an object"):
        parse_body("v=1")
    with pytest.raises(MalformedProvenance, match=r"no tunegate\.provenance"):
        response_provenance({"choices": []})


def test_signing_refuses_a_statement_that_cannot_be_expressed(key: Ed25519PrivateKey) -> None:
    with pytest.raises(MalformedProvenance, match="sha256"):
        ProvenanceSigner(key).header(VERSION, "not-a-hash", EVENT)


def test_response_text_for_chat_and_completions() -> None:
    assert response_text({"choices": [{"message": {"role": "assistant", "content": "hi"}}]}) == "hi"
    assert response_text({"choices": [{"text": "plain"}]}) == "plain"
    with pytest.raises(MalformedProvenance, match="n=1"):
        response_text({"choices": [{"text": "a"}, {"text": "b"}]})
    with pytest.raises(MalformedProvenance, match="no choices"):
        response_text({"error": {"message": "x"}})


def test_gateway_signs_with_its_service_key(tmp_path: Path) -> None:
    signer = provenance_signer(tmp_path / "keys")
    assert (tmp_path / "keys" / "signing" / "gateway.key").is_file()
    trusted = trusted_gateway_keys(tmp_path / "keys")
    assert list(trusted) == [signer.key_id]
    provenance: Provenance = signer.statement(VERSION, response_sha256(TEXT), EVENT)
    verify(provenance, trusted[provenance.key_id], TEXT)
    # The same key again, not a new one; and the same as the service's event signer (what bootstrap uses).
    assert provenance_signer(tmp_path / "keys", create=False).key_id == signer.key_id
    service = ProvenanceSigner.from_signer(KeyDirectory(tmp_path / "keys").signer("gateway"))
    assert service.key_id == signer.key_id


def test_sign_gives_the_header_and_the_body_field(key: Ed25519PrivateKey) -> None:
    header, body = ProvenanceSigner(key).sign(VERSION, response_sha256(TEXT), EVENT)
    assert parse_header(header) == parse_body(body)
    assert body["version"] == VERSION and body["event"] == EVENT and body["v"] == 1
    json_body = json.loads(json.dumps(body))  # what a client gets back from the JSON response
    verify(response_provenance({"tunegate": {"provenance": json_body}}), key.public_key(), TEXT)
