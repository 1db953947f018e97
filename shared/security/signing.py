"""Envelope signatures: every event is signed by the identity that produced it, and every consumer checks.

What is signed: the domain tag `tunegate/envelope/v1` and a newline, then the canonical JSON
(shared/canonical.py) of the envelope as validated, without its `signature` field. The signature names
its key by key id (shared/security/keys.py), so keys can be rotated while old events stay verifiable, and
an old key can later be retired (`KeyDirectory.retire`), after which nothing it signed verifies.

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


KEY_ID = re.compile(r"[0-9a-f]{16}")
"""The form of a key id (shared/security/keys.py key_id_for); checked before a key id ever becomes a file name."""


class RetiredKeyError(SignatureError):
    """A signature by a key that was retired (`tunegate signing-keys retire`): refused, whatever it signed."""


class KeyRetirementError(ValueError):
    """A key that cannot be retired (unknown, or still the current signing key); the message says which."""


@dataclass(frozen=True)
class _Trusted:
    """A trusted public key and the stat of the file it came from: a cache entry is good only while that file
    is still there, unchanged (retiring moves the file away, so the next lookup notices)."""

    key: Ed25519PublicKey
    path: Path
    stamp: tuple[int, int, int]


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime, size) of the file behind path (symlinks followed, as Kubernetes ConfigMap mounts use
    them), or None when it is gone."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class KeyDirectory:
    """Service keys on disk: `signing/<identity>.key` (0600, the current private key),
    `trust/<identity>/<key_id>.pub` (the public keys events of that identity verify with: the current one and
    rotated ones kept for events still in flight) and `retired/<identity>/<key_id>.pub` (keys taken out of
    trust by `retire`, kept for audit; a signature by one of them is refused even if a copy of it is back in
    trust/). In compose and Kubernetes the same layout is mounted from secrets (docs/security.md); retired/
    stays with the operator's copy, only signing/ and trust/ are mounted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, dict[str, _Trusted]] = {}  # identity -> key id -> trusted key

    def _private_path(self, identity: str) -> Path:
        return self.root / "signing" / f"{_checked(identity)}.key"

    def _trust_dir(self, identity: str) -> Path:
        return self.root / "trust" / _checked(identity)

    def _retired_dir(self, identity: str) -> Path:
        return self.root / "retired" / _checked(identity)

    def signer(self, identity: str) -> EnvelopeSigner:
        """The identity's signer (its key made 0600 on first use); its public key is published to the trust
        directory when missing."""
        key = load_or_create_private_key(self._private_path(identity))
        self._publish(identity, key.public_key())
        return EnvelopeSigner(identity, key)

    def existing_signer(self, identity: str) -> EnvelopeSigner:
        """The identity's signer from a key that must already be there (mounted secrets): never creates one."""
        return EnvelopeSigner(identity, read_private_key(self._private_path(identity)))

    def current_key_id(self, identity: str) -> str | None:
        """The key id of the identity's current signing key, or None when this directory holds none."""
        path = self._private_path(identity)
        return key_id_for(read_private_key(path).public_key()) if path.exists() else None

    def rotate(self, identity: str) -> EnvelopeSigner:
        """A new current key. The old public key stays in the trust directory: events signed before the rotation
        are still in outboxes and streams, and refusing them would dead-letter them. Lock the old key out with
        `retire` once they are through."""
        key = Ed25519PrivateKey.generate()
        self._publish(identity, key.public_key())
        write_secret(self._private_path(identity), private_key_pem(key))
        return EnvelopeSigner(identity, key)

    def retire(self, identity: str, key_id: str) -> bool:
        """Take key_id out of the identity's trust: its public key moves to `retired/<identity>/` (kept for audit)
        and every lookup refuses it from then on. The current signing key cannot be retired (its service would
        sign events nobody accepts). True when the key was retired now, False when it already was."""
        current = self.current_key_id(identity)
        if current is None:
            raise KeyRetirementError(
                f"{identity} has no signing key at {self._private_path(identity)}, so its current key is unknown; "
                "retire keys where the signing keys are (TUNEGATE_KEYS_DIR)"
            )
        if key_id == current:
            raise KeyRetirementError(
                f"key {key_id} is the current signing key of {identity}; rotate first "
                f"(`tunegate signing-keys rotate {identity}`), restart {identity}, then retire the old key"
            )
        sources = [path for path, (kid, _) in self._trusted_files(identity).items() if kid == key_id]
        if not sources:
            if key_id in self.retired_keys(identity):
                return False
            trusted = ", ".join(self.public_keys(identity)) or "none"
            raise KeyRetirementError(
                f"{key_id!r} is not a trusted key of {identity} (under {self._trust_dir(identity)}); trusted: "
                f"{trusted}; current: {current}"
            )
        target_dir = self._retired_dir(identity)
        target_dir.parent.mkdir(exist_ok=True, mode=0o700)  # mode= of parents=True would not reach retired/
        target_dir.mkdir(exist_ok=True, mode=0o700)
        for source in sources:
            # rename, not copy+delete: the key leaves trust/ in one step, so no reader sees it in both or neither
            source.replace(target_dir / f"{key_id}.pub")
        self._cache.get(identity, {}).pop(key_id, None)
        return True

    def _publish(self, identity: str, key: Ed25519PublicKey) -> None:
        key_id = key_id_for(key)
        if (self._retired_dir(identity) / f"{key_id}.pub").exists():
            # A signing key restored from an old backup must not quietly become trusted again.
            raise KeyRetirementError(
                f"the signing key of {identity} at {self._private_path(identity)} is key {key_id}, which was "
                f"retired; give {identity} a new key with `tunegate signing-keys rotate {identity}`"
            )
        target = self._trust_dir(identity) / f"{key_id}.pub"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            # Per process: replicas starting together on one home publish the same key at the same moment,
            # and a shared temporary name let one rename the other's file away.
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_text(public_key_pem(key))
            tmp.replace(target)

    def _trusted_files(self, identity: str) -> dict[Path, tuple[str, _Trusted]]:
        """Every public key file in the identity's trust directory, retired ones included, by path."""
        found: dict[Path, tuple[str, _Trusted]] = {}
        folder = self._trust_dir(identity)
        if folder.is_dir():
            for path in sorted(folder.glob("*.pub")):
                stamp = _stamp(path)
                if stamp is None:
                    continue  # moved away (retired) between the listing and now
                key = load_public_key(path.read_bytes())
                found[path] = (key_id_for(key), _Trusted(key, path, stamp))
        return found

    def retired_keys(self, identity: str) -> dict[str, Ed25519PublicKey]:
        """The identity's retired public keys, by key id: kept for audit, never trusted."""
        found: dict[str, Ed25519PublicKey] = {}
        folder = self._retired_dir(identity)
        if folder.is_dir():
            for path in sorted(folder.glob("*.pub")):
                key = load_public_key(path.read_bytes())
                found[key_id_for(key)] = key
        return found

    def public_keys(self, identity: str) -> dict[str, Ed25519PublicKey]:
        """The identity's trusted public keys, by key id: those in its trust directory that are not retired."""
        retired = self.retired_keys(identity)
        return {kid: entry.key for kid, entry in self._trusted_files(identity).values() if kid not in retired}

    def _is_retired(self, identity: str, key_id: str) -> bool:
        return (self._retired_dir(identity) / f"{key_id}.pub").exists()

    def lookup(self, identity: str, key_id: str) -> Ed25519PublicKey | None:
        """The trusted key, or None; raises RetiredKeyError for a retired one, so the refusal says so.

        Cached, but every hit re-checks that the key is not retired and that its file is still in trust/,
        unchanged (two stats, cheap next to the signature check): a retirement takes effect on the next event,
        without a restart. An unknown key id re-reads the directory, so a rotation is picked up without restart."""
        if not SERVICE_IDENTITY.fullmatch(identity) or not KEY_ID.fullmatch(key_id):
            return None  # principals are not in this directory, and neither name ever becomes a path unchecked
        if self._is_retired(identity, key_id):
            raise RetiredKeyError(
                f"key {key_id} of {identity!r} was retired (tunegate signing-keys retire); events signed with it "
                "are refused"
            )
        cached = self._cache.get(identity, {}).get(key_id)
        if cached is not None and _stamp(cached.path) == cached.stamp:
            return cached.key
        # Replace the identity's whole entry: a key whose file left trust/ must not linger in the cache.
        fresh = {kid: entry for kid, entry in self._trusted_files(identity).values()}
        self._cache[identity] = fresh
        found = fresh.get(key_id)
        return None if found is None else found.key
