"""The log's Ed25519 key pair: generated on first start under $TUNEGATE_HOME/keys, loaded afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.domain.tree_heads import log_id_for
from shared.security.keys import load_or_create_private_key, load_public_key, public_key_pem

PRIVATE_KEY_FILE = "audit_ed25519.key"
PUBLIC_KEY_FILE = "audit_ed25519.pub"

if TYPE_CHECKING:
    from shared.config import Settings


def log_keys_dir(settings: Settings) -> Path:
    """Where the audit service keeps the log's key pair, and where readers on this host find its public key."""
    return settings.home_dir / "keys"


def local_public_key_path(settings: Settings) -> Path:
    return log_keys_dir(settings) / PUBLIC_KEY_FILE


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
        """Load the key pair, creating it if absent: private key 0600 (PEM, PKCS#8), public key 0644 (PEM)
        beside it for auditors to copy."""
        signer = cls(load_or_create_private_key(keys_dir / PRIVATE_KEY_FILE))
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
