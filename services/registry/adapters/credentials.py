"""Credentials kept for the local CLI under $TUNEGATE_HOME/credentials (0700): `admin.token` (the first
admin's token, as bootstrapped) and `admin.name` (whose it is), and per principal `<name>/token` and
`<name>/signing.key` (Ed25519, PEM), all 0600. The registry stores only token hashes and public keys; these
files are the only copies of the secrets.

This module alone decides where a principal's token is looked for (`token_paths`): its own folder, where
`principals create` and `rotate` keep it, then, for the first admin, `admin.token`, where `tunegate up` and
`admin bootstrap` keep it; so `--as admin` works right after `tunegate up`."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.registry.domain.principals import validate_name
from shared.config import Settings
from shared.security.keys import private_key_pem, read_private_key, write_secret

ADMIN_TOKEN = "admin.token"
ADMIN_NAME = "admin.name"
FIRST_ADMIN = "admin"  # the name `tunegate up` (and `admin bootstrap` without --name) gives the first admin
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

    @property
    def admin_name_path(self) -> Path:
        return self.root / ADMIN_NAME

    def principal_dir(self, name: str) -> Path:
        validate_name(name)
        if name in (ADMIN_TOKEN, ADMIN_NAME):
            raise CredentialError(
                f"principal name {name!r} is the name of a file in {self.root} (the first admin's); pick another name"
            )
        return self.root / name

    def first_admin_name(self) -> str:
        """Whose token admin.token holds: the name saved with it, else FIRST_ADMIN (a home whose admin.token was
        written before the name was recorded, or by hand)."""
        try:
            recorded = self.admin_name_path.read_text("utf-8").strip()
        except FileNotFoundError:
            return FIRST_ADMIN
        return recorded or FIRST_ADMIN

    def token_paths(self, name: str) -> list[Path]:
        """Where `name`'s token is looked for, first found wins: `<name>/token` (written by `principals create`
        and `rotate`, so a rotated first admin's new token beats the stale bootstrap one), then, when `name` is
        the first admin, admin.token."""
        own = self.principal_dir(name) / TOKEN
        return [own, self.admin_token_path] if name == self.first_admin_name() else [own]

    # ------------------------------------------------------------ writing

    def save_admin_token(self, token: str, name: str = FIRST_ADMIN) -> Path:
        """Keep the first admin's token, and its name, so that `--as NAME` finds it too."""
        validate_name(name)
        _private_dir(self.root)
        write_secret(self.admin_token_path, token.encode("ascii"))
        write_secret(self.admin_name_path, f"{name}\n".encode("ascii"))  # validate_name: ASCII only
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
        """Drop a revoked principal's token; its signing key goes too (the registry refuses it anyway). For the
        first admin, the bootstrap token goes as well: left behind, every command without --as (and --as with
        its name) would go on presenting a revoked token."""
        first_admin = name == self.first_admin_name()
        folder = self.principal_dir(name)
        for file_name in (TOKEN, SIGNING_KEY):
            (folder / file_name).unlink(missing_ok=True)
        if first_admin:
            self.admin_token_path.unlink(missing_ok=True)
            self.admin_name_path.unlink(missing_ok=True)

    # ------------------------------------------------------------ reading

    def admin_token(self) -> str | None:
        """The first admin's token: a rotated one (kept under its name) before the one bootstrap saved."""
        return self.token(self.first_admin_name())

    def token(self, name: str) -> str | None:
        """`name`'s stored token (see token_paths), or None when none is kept on this machine."""
        for path in self.token_paths(name):
            if path.is_file():
                return path.read_text("ascii").strip()
        return None

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
