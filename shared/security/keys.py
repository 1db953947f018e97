"""Ed25519 keys: one parser for public keys in every form we accept, key ids, and private keys on disk (0600).

A public key is decided by its content, never after stripping: a raw 32-byte key may begin or end with a
byte that looks like whitespace, so stripping first would reject (or corrupt) about one key in twenty.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_HEX_KEY = re.compile(rb"^\s*([0-9a-fA-F]{64})\s*$")
_PEM_START = re.compile(rb"^\s*-----BEGIN ")


class PublicKeyError(ValueError):
    """A public key that cannot be used; the message says why."""


class PrivateKeyError(RuntimeError):
    """A private key file that cannot be used; the message names the file and why."""


def load_public_key(data: bytes | str) -> Ed25519PublicKey:
    """Accept a PEM (SubjectPublicKeyInfo), the raw 32-byte key, or its 64-character hex form (surrounding
    whitespace allowed for PEM and hex only). Exactly 32 bytes are always the raw key."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    if len(raw) == 32:
        return Ed25519PublicKey.from_public_bytes(raw)
    if _PEM_START.match(raw):
        try:
            key = serialization.load_pem_public_key(raw.strip())
        except ValueError as exc:
            raise PublicKeyError(f"public key PEM cannot be parsed: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise PublicKeyError(f"public key is {type(key).__name__}, expected Ed25519")
        return key
    match = _HEX_KEY.match(raw)
    if match:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(match.group(1).decode("ascii")))
    raise PublicKeyError(
        f"public key: expected PEM, 32 raw bytes or 64 hex characters, got {len(raw)} bytes of something else"
    )


def public_key_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def key_id_for(key: Ed25519PublicKey) -> str:
    """Short, stable name of a public key: the first 16 hex digits of SHA-256 over its raw bytes."""
    return hashlib.sha256(public_key_raw(key)).hexdigest()[:16]


def write_secret(path: Path, data: bytes) -> None:
    """Write a secret file 0600 atomically (never world-readable, not even for an instant)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def load_or_create_secret(path: Path, *, nbytes: int = 32, what: str = "secret key") -> bytes:
    """A random symmetric key kept hex-encoded in a 0600 file, created on first use. Services that must share
    the key (the scanner plants canaries the evaluator measures) may race to create it: the file is
    published with link(), which fails when it exists, so every racer ends up reading the winner's key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(nbytes).hex().encode("ascii"))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise ValueError(f"{what} {path}: not hex") from None
    if len(key) < 16:
        raise ValueError(f"{what} {path}: expected at least 16 bytes of hex, got {len(key)}")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def read_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PrivateKeyError(f"signing key {path} not found") from None
    if not data:
        # Another process created the file (O_EXCL) and is still writing it.
        for _ in range(50):
            time.sleep(0.1)
            data = path.read_bytes()
            if data:
                break
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise PrivateKeyError(f"signing key {path} cannot be read: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PrivateKeyError(f"signing key {path} is {type(key).__name__}, expected Ed25519")
    return key


def load_or_create_private_key(path: Path) -> Ed25519PrivateKey:
    """Load the key, creating it 0600 if absent. O_EXCL makes two processes starting together agree on one
    key: the loser of the race loads the winner's."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_private_key(path)
    key = Ed25519PrivateKey.generate()
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_pem(key))
    return key
