"""The log's Ed25519 key pair: generated on first start under $TUNEGATE_HOME/keys, loaded afterwards."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.domain.tree_heads import log_id_for
from shared.security.keys import load_public_key, public_key_pem

PRIVATE_KEY_FILE = "audit_ed25519.key"
PUBLIC_KEY_FILE = "audit_ed25519.pub"


class Ed25519Signer:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        self.log_id = log_id_for(self.public_key)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, keys_dir: Path) -> Ed25519Signer:
        """Load the key pair, creating it (private 0600, public 0644, PEM) if absent. O_EXCL makes two
        services starting together agree on one key: the loser of the race loads the winner's."""
        keys_dir.mkdir(parents=True, exist_ok=True)
        private_path = keys_dir / PRIVATE_KEY_FILE
        try:
            fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            signer = cls(_read_private_key(private_path))
        else:
            signer = cls.generate()
            pem = signer._private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
        public_path = keys_dir / PUBLIC_KEY_FILE
        if not public_path.exists() or load_public_key(public_path.read_bytes()) != signer.public_key:
            tmp = public_path.with_suffix(".pub.tmp")
            tmp.write_text(signer.public_key_pem)
            tmp.chmod(0o644)
            tmp.replace(public_path)
        return signer

    @property
    def public_key_pem(self) -> str:
        return public_key_pem(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


def _read_private_key(path: Path) -> Ed25519PrivateKey:
    data = path.read_bytes()
    if not data:
        # Another process created the file and is still writing it.

        for _ in range(50):
            time.sleep(0.1)
            data = path.read_bytes()
            if data:
                break
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise RuntimeError(f"audit signing key {path} cannot be read: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"audit signing key {path} is {type(key).__name__}, expected Ed25519")
    return key


def read_public_key(path: Path) -> Ed25519PublicKey:
    if not path.exists():
        raise FileNotFoundError(f"public key {path} not found")
    return load_public_key(path.read_bytes())
