"""Credentials kept for the local CLI under $TUNEGATE_HOME/credentials (0700): `admin.token` (the first
admin's token), and per principal `<name>/token` and `<name>/signing.key` (Ed25519, PEM), all 0600.
The registry stores only token hashes and public keys; these files are the only copies of the secrets."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.registry.domain.principals import validate_name
from shared.config import Settings
from shared.security.keys import private_key_pem, read_private_key, write_secret

ADMIN_TOKEN = "admin.token"
TOKEN = "token"
SIGNING_KEY = "signing.key"


def bootstrap_secret_path(settings: Settings) -> Path:
    """Where the registry writes the one-time first-admin secret (adapters/first_admin.py)."""
    return settings.home_dir / "registry" / "bootstrap.secret"


class CredentialError(RuntimeError):
    """A credential that is missing or unusable; the message names the file and what to do."""


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


class CredentialStore:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.home_dir / "credentials"

    @property
    def admin_token_path(self) -> Path:
        return self.root / ADMIN_TOKEN

    def principal_dir(self, name: str) -> Path:
        validate_name(name)
        if name == ADMIN_TOKEN:
            raise CredentialError(f"principal name {name!r} is the admin token's file name; pick another name")
        return self.root / name

    # ------------------------------------------------------------ writing

    def save_admin_token(self, token: str) -> Path:
        _private_dir(self.root)
        write_secret(self.admin_token_path, token.encode("ascii"))
        return self.admin_token_path

    def save_token(self, name: str, token: str) -> Path:
        folder = _private_dir(self.principal_dir(name))
        _private_dir(self.root)
        write_secret(folder / TOKEN, token.encode("ascii"))
        return folder / TOKEN

    def save_signing_key(self, name: str, key: Ed25519PrivateKey) -> Path:
        folder = _private_dir(self.principal_dir(name))
        write_secret(folder / SIGNING_KEY, private_key_pem(key))
        return folder / SIGNING_KEY

    def forget(self, name: str) -> None:
        """Drop a revoked principal's token; its signing key goes too (the registry refuses it anyway)."""
        folder = self.principal_dir(name)
        for file_name in (TOKEN, SIGNING_KEY):
            (folder / file_name).unlink(missing_ok=True)

    # ------------------------------------------------------------ reading

    def admin_token(self) -> str | None:
        path = self.admin_token_path
        return path.read_text("ascii").strip() if path.is_file() else None

    def token(self, name: str) -> str | None:
        path = self.principal_dir(name) / TOKEN
        return path.read_text("ascii").strip() if path.is_file() else None

    def has_signing_key(self, name: str) -> bool:
        return (self.principal_dir(name) / SIGNING_KEY).is_file()

    def signing_key(self, name: str) -> Ed25519PrivateKey:
        path = self.principal_dir(name) / SIGNING_KEY
        if not path.is_file():
            raise CredentialError(
                f"no signing key for principal {name!r} at {path}; create the principal from this machine with "
                f"`tunegate principals create {name} --role requester` (or rotate it) so its key is kept here"
            )
        return read_private_key(path)
