"""A witness's state directory, meant for another host or trust domain than the ledger:

    witness_ed25519.key   its private key (PEM, 0600)
    witness.json          its name and the log's verifier key it follows (0600)
    latest.checkpoint     the last checkpoint it cosigned, with its cosignature (0600)
    .lock                 held while cosigning, so two cosigns cannot race past the rollback check

The directory is created 0700 and must not be a symbolic link."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.json_input import parse_json
from shared.security.keys import load_or_create_private_key, read_private_key, write_secret

KEY_FILE = "witness_ed25519.key"
CONFIG_FILE = "witness.json"
LATEST_FILE = "latest.checkpoint"
MAX_STATE_BYTES = 1024 * 1024


class WitnessStateError(RuntimeError):
    """A state directory that cannot be used; the message names the file and why."""


class WitnessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    log_verifier_key: str


class WitnessState:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _checked_directory(self, create: bool) -> Path:
        if self.directory.is_symlink():
            raise WitnessStateError(f"witness state directory {self.directory} is a symbolic link")
        if create:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.directory.chmod(0o700)  # an existing directory too: the key and state are nobody else's
        if not self.directory.is_dir():
            raise WitnessStateError(
                f"witness state directory {self.directory} does not exist (run `tunegate audit witness init`)"
            )
        return self.directory

    def _read(self, name: str) -> bytes | None:
        path = self._checked_directory(create=False) / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise WitnessStateError(f"{path} cannot be opened: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_STATE_BYTES + 1)
        if len(data) > MAX_STATE_BYTES:
            raise WitnessStateError(f"{path} is larger than {MAX_STATE_BYTES} bytes")
        return data

    def initialise(self, config: WitnessConfig) -> Ed25519PrivateKey:
        """Create the key (once) and the configuration; re-running with the same configuration is harmless,
        with a different one it is refused (a witness follows one log under one name)."""
        directory = self._checked_directory(create=True)
        existing = self._read(CONFIG_FILE)
        if existing is not None:
            current = self.config()
            if current != config:
                raise WitnessStateError(
                    f"{directory / CONFIG_FILE} already configures witness {current.name!r} for"
                    f" {current.log_verifier_key.split('+')[0]!r}; use another state directory"
                )
        else:
            write_secret(directory / CONFIG_FILE, config.model_dump_json(indent=2).encode() + b"\n")
        return load_or_create_private_key(directory / KEY_FILE)

    def config(self) -> WitnessConfig:
        data = self._read(CONFIG_FILE)
        if data is None:
            raise WitnessStateError(f"{self.directory / CONFIG_FILE} not found (run `tunegate audit witness init`)")
        try:
            return WitnessConfig.model_validate(parse_json(data))
        except (ValueError, ValidationError) as exc:
            raise WitnessStateError(f"{self.directory / CONFIG_FILE} is not a witness configuration: {exc}") from None

    def private_key(self) -> Ed25519PrivateKey:
        return read_private_key(self._checked_directory(create=False) / KEY_FILE)

    def latest(self) -> bytes | None:
        return self._read(LATEST_FILE)

    def store_latest(self, note: bytes) -> None:
        write_secret(self._checked_directory(create=False) / LATEST_FILE, note)

    @contextmanager
    def locked(self) -> Iterator[None]:
        path = self._checked_directory(create=False) / ".lock"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
