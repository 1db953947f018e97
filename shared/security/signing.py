"""Envelope signatures: every event is signed by the identity that produced it, and every consumer checks.

What is signed: the domain tag `tunegate/envelope/v1` and a newline, then the canonical JSON
(shared/canonical.py) of the envelope as validated, without its `signature` field. The signature names
its key by key id (shared/security/keys.py), so keys can be rotated while old events stay verifiable.

Identities: a service signs as its name (`registry`, `scanner`, ...); a person or upstream system signs
as `principal:<name>` with the key the registry holds for that principal. Which identity may emit which
event type is decided by shared/security/authorization.py, not here.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.canonical import canonical_json
from shared.events.envelope import Envelope, EnvelopeSignature
from shared.security.keys import (
    key_id_for,
    load_or_create_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    read_private_key,
    write_secret,
)

DOMAIN_TAG = b"tunegate/envelope/v1\n"
PRINCIPAL_PREFIX = "principal:"


class SignatureError(ValueError):
    """An envelope whose signature is missing, unknown or wrong; the message says which."""


def signing_bytes(envelope: Envelope) -> bytes:
    return DOMAIN_TAG + canonical_json(envelope.model_dump(mode="json", exclude={"signature"}))


def principal_identity(name: str) -> str:
    return f"{PRINCIPAL_PREFIX}{name}"


@dataclass(frozen=True)
class EnvelopeSigner:
    """Signs envelopes as one identity with its current key."""

    identity: str
    private_key: Ed25519PrivateKey

    @cached_property
    def key_id(self) -> str:  # a hash of the public key: computed once, not on every signature
        return key_id_for(self.private_key.public_key())

    def sign(self, envelope: Envelope) -> Envelope:
        if envelope.producer != self.identity:
            raise SignatureError(
                f"producer {envelope.producer!r} cannot be signed by {self.identity!r}: an identity signs only "
                "its own events"
            )
        value = self.private_key.sign(signing_bytes(envelope))  # the signed bytes exclude any old signature
        signature = EnvelopeSignature(key_id=self.key_id, value=base64.b64encode(value).decode("ascii"))
        return envelope.model_copy(update={"signature": signature})


PublicKeyLookup = Callable[[str, str], Ed25519PublicKey | None]
"""(identity, key_id) -> the public key, or None when that identity has no such key."""


def verify_envelope(envelope: Envelope, lookup: PublicKeyLookup) -> None:
    """Raise SignatureError unless the envelope carries a valid signature by a key of its producer."""
    signature = envelope.signature
    if signature is None:
        raise SignatureError(f"unsigned envelope from {envelope.producer!r}")
    key = lookup(envelope.producer, signature.key_id)
    if key is None:
        raise SignatureError(f"key {signature.key_id} is not a known key of {envelope.producer!r}")
    try:
        value = base64.b64decode(signature.value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("signature.value is not base64") from None
    try:
        key.verify(value, signing_bytes(envelope))
    except InvalidSignature:
        raise SignatureError(
            f"signature by key {signature.key_id} of {envelope.producer!r} does not match the envelope"
        ) from None


SERVICE_IDENTITY = re.compile(r"[a-z][a-z0-9_-]{0,63}")


def _checked(identity: str) -> str:
    if not SERVICE_IDENTITY.fullmatch(identity):
        raise SignatureError(f"{identity!r} is not a service identity (lower-case letters, digits, '-', '_')")
    return identity


class KeyDirectory:
    """Service keys on disk: `signing/<identity>.key` (0600, the current private key) and
    `trust/<identity>/<key_id>.pub` (every public key the identity ever signed with, so rotated keys still
    verify). In compose and Kubernetes the same layout is mounted from secrets (docs/security.md)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[tuple[str, str], Ed25519PublicKey] = {}

    def _private_path(self, identity: str) -> Path:
        return self.root / "signing" / f"{_checked(identity)}.key"

    def _trust_dir(self, identity: str) -> Path:
        return self.root / "trust" / _checked(identity)

    def signer(self, identity: str) -> EnvelopeSigner:
        """The identity's signer (its key made 0600 on first use); its public key is published to the trust
        directory when missing."""
        key = load_or_create_private_key(self._private_path(identity))
        self._publish(identity, key.public_key())
        return EnvelopeSigner(identity, key)

    def existing_signer(self, identity: str) -> EnvelopeSigner:
        """The identity's signer from a key that must already be there (mounted secrets): never creates one."""
        return EnvelopeSigner(identity, read_private_key(self._private_path(identity)))

    def rotate(self, identity: str) -> EnvelopeSigner:
        """A new current key; the old public key stays in the trust directory for verification."""
        key = Ed25519PrivateKey.generate()
        self._publish(identity, key.public_key())
        write_secret(self._private_path(identity), private_key_pem(key))
        return EnvelopeSigner(identity, key)

    def _publish(self, identity: str, key: Ed25519PublicKey) -> None:
        target = self._trust_dir(identity) / f"{key_id_for(key)}.pub"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Per process: replicas starting together on one home publish the same key at the same moment,
            # and a shared temporary name let one rename the other's file away.
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_text(public_key_pem(key))
            tmp.replace(target)

    def public_keys(self, identity: str) -> dict[str, Ed25519PublicKey]:
        found: dict[str, Ed25519PublicKey] = {}
        folder = self._trust_dir(identity)
        if folder.is_dir():
            for path in sorted(folder.glob("*.pub")):
                key = load_public_key(path.read_bytes())
                found[key_id_for(key)] = key
        return found

    def lookup(self, identity: str, key_id: str) -> Ed25519PublicKey | None:
        """Cached; an unknown key id re-reads the directory once, so a rotation is picked up without restart."""
        cached = self._cache.get((identity, key_id))
        if cached is not None:
            return cached
        if not SERVICE_IDENTITY.fullmatch(identity):
            return None  # principals are not in this directory, and a producer name never becomes a path
        for kid, key in self.public_keys(identity).items():
            self._cache[(identity, kid)] = key
        return self._cache.get((identity, key_id))
