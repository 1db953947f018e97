"""Principals: people and upstream systems, their roles, bearer tokens and event-signing keys.

Tokens are random, shown once, and only their SHA-256 is stored: a leaked database does not leak
credentials, and a 256-bit random token needs no slow KDF. A principal that submits jobs also has an
Ed25519 signing key; the registry holds only public halves, and keeps every key a principal ever had
(retired on rotation) so what was signed before a rotation still verifies."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, get_args

from services.registry.domain.errors import Conflict
from services.registry.domain.events import EventRecorder, PrincipalCreated, PrincipalRevoked, PrincipalRotated

Role = Literal["requester", "approver", "deployer", "auditor", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
TOKEN_PREFIX = "tg_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")


def validate_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"principal name {name!r}: use 1-200 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    return name


def validate_roles(roles: list[str]) -> list[str]:
    if not roles:
        raise ValueError(f"roles: at least one role is required (one of {', '.join(ROLES)})")
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise ValueError(f"roles: unknown role(s) {', '.join(unknown)} (known: {', '.join(ROLES)})")
    return sorted(set(roles), key=ROLES.index)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SigningKey:
    """The public half of an Ed25519 event-signing key: 64 hex characters and its key id."""

    key_id: str
    public_key: str
    added_at: datetime
    retired_at: datetime | None = None


@dataclass(kw_only=True, eq=False)
class Principal(EventRecorder):
    name: str
    roles: list[str]
    token_sha256: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    keys: list[SigningKey] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        *,
        name: str,
        roles: list[str],
        token_sha256: str,
        key: SigningKey | None,
        by: str,
        now: datetime,
    ) -> Principal:
        principal = cls(
            name=validate_name(name),
            roles=validate_roles(roles),
            token_sha256=token_sha256,
            created_at=now,
            created_by=by,
            keys=[key] if key is not None else [],
        )
        principal._record(
            PrincipalCreated(
                subject=name,
                actor=by,
                roles=list(principal.roles),
                token_sha256=token_sha256,
                public_key=key.public_key if key else None,
                key_id=key.key_id if key else None,
            )
        )
        return principal

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def current_key(self) -> SigningKey | None:
        return next((key for key in reversed(self.keys) if key.retired_at is None), None)

    def key(self, key_id: str) -> SigningKey | None:
        """Any key this principal ever had, retired ones included (they verify what was signed before)."""
        return next((key for key in self.keys if key.key_id == key_id), None)

    def has_any_role(self, roles: tuple[str, ...] | list[str]) -> bool:
        return any(role in self.roles for role in roles)

    def _require_active(self, action: str) -> None:
        if self.revoked_at is not None:
            raise Conflict(f"principal {self.name!r} was revoked at {self.revoked_at.isoformat()}; cannot {action}")

    def rotate(self, *, token_sha256: str, key: SigningKey | None, by: str, now: datetime) -> None:
        """A new token; with a new key, the current key retires (kept for verification). Without one, the
        current key stays."""
        self._require_active("rotate its credentials")
        if key is not None:
            if self.key(key.key_id) is not None:
                raise Conflict(f"principal {self.name!r}: key {key.key_id} was already registered; use a new key")
            self.keys = [k if k.retired_at is not None else replace(k, retired_at=now) for k in self.keys] + [key]
        self.token_sha256 = token_sha256
        current = self.current_key
        self._record(
            PrincipalRotated(
                subject=self.name,
                actor=by,
                token_sha256=token_sha256,
                public_key=current.public_key if current else None,
                key_id=current.key_id if current else None,
            )
        )

    def revoke(self, *, by: str, reason: str, now: datetime) -> None:
        self._require_active("revoke it again")
        self.revoked_at = now
        self._record(PrincipalRevoked(subject=self.name, actor=by, reason=reason))
