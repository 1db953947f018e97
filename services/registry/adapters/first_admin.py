"""The first admin: a one-time secret the registry writes (0600) under TUNEGATE_HOME while no active admin
exists, and consumes when `tunegate admin bootstrap` presents it. Only its hash is in the database, so
the secret is worth something only to whoever can read the registry's home, and only once."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.registry.adapters import repository
from services.registry.adapters.credentials import bootstrap_secret_path
from services.registry.adapters.tables import BootstrapSecretRow
from services.registry.domain.errors import Conflict, Unauthenticated
from shared.config import Settings
from shared.security.keys import write_secret
from shared.storage.db import Database

log = logging.getLogger("tunegate.registry")

SECRET_ROW = 1


def secret_file(settings: Settings) -> Path:
    path = bootstrap_secret_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def open_bootstrap(db: Database, settings: Settings, now: datetime) -> Path | None:
    """At start: while no active admin exists, make sure a fresh unconsumed secret is on disk. Returns
    its path, or None when an admin exists (nothing to bootstrap)."""
    target = secret_file(settings)
    with db.transaction() as session:
        if repository.active_admin_exists(session):
            target.unlink(missing_ok=True)
            return None
        row = session.get(BootstrapSecretRow, SECRET_ROW)
        if row is not None and row.consumed_at is None and target.exists():
            return target  # still open from an earlier start
    secret = secrets.token_urlsafe(32)
    try:
        with db.transaction() as session:
            row = session.get(BootstrapSecretRow, SECRET_ROW)
            if row is None:
                session.add(BootstrapSecretRow(id=SECRET_ROW, secret_sha256=_digest(secret), created_at=now))
            else:
                row.secret_sha256, row.created_at, row.consumed_at, row.consumed_by = _digest(secret), now, None, None
    except IntegrityError:
        return target  # another replica opened it at the same moment; its file is the one
    write_secret(target, secret.encode("ascii"))
    log.info("no admin yet: one-time bootstrap secret written to %s (run `tunegate admin bootstrap`)", target)
    return target


def consume_bootstrap(session: Session, secret: str, *, by: str, now: datetime) -> None:
    """Check and consume the secret in the caller's transaction (the admin is created in the same one)."""
    if repository.active_admin_exists(session):
        raise Conflict("an active admin already exists; the bootstrap is closed (ask an admin for a principal)")
    row = session.get(BootstrapSecretRow, SECRET_ROW)
    if row is None or row.consumed_at is not None:
        raise Conflict("no bootstrap secret is open; restart the registry to open one while no admin exists")
    if not hmac.compare_digest(_digest(secret), row.secret_sha256):
        raise Unauthenticated("bootstrap secret does not match the one the registry wrote")
    row.consumed_at, row.consumed_by = now, by


def close_bootstrap(settings: Settings) -> None:
    secret_file(settings).unlink(missing_ok=True)
