"""Gateway API keys: issued, rotated and revoked here, next to the principals, each change an audited
`apikey.*` event; the gateway learns them from those events.

A key belongs to one tenant and may call the models it names (aliases, version ids, upstream route names)
or every model deployed to its tenant ("*"), within a request rate and a daily token budget. Its secret
is `tgk_<key id without 'key_'>_<token_urlsafe(32)>`: the id part has a fixed length, so the secret
splits unambiguously although the random part may contain '_'. The secret is shown once; only its
SHA-256 is stored and announced (a 256-bit random secret needs no slow KDF). Only admins manage keys
(domain/access.py); a revoked key stays on record and cannot be rotated back to life."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from services.registry.domain.errors import Conflict
from services.registry.domain.events import ApiKeyCreated, ApiKeyRevoked, ApiKeyRotated, EventRecorder
from shared.events.inference import API_KEY_ID_PATTERN, MAX_MODEL_SCOPES
from shared.security.api_keys import KEY_ID, hash_secret, new_key_id, new_secret

__all__ = ["KEY_ID", "ApiKey", "hash_secret", "new_key_id", "new_secret"]
TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MODEL_SCOPE = re.compile(r"^(\*|[a-z0-9](?:[a-z0-9.-]{0,70}[a-z0-9])?)$")
ANY_MODEL = "*"
MAX_REQUESTS_PER_MINUTE = 1_000_000
MAX_TOKENS_PER_DAY = 10_000_000_000
MAX_REASON = 4_000


def validate_key_name(name: str) -> str:
    text = name.strip()
    if not 1 <= len(text) <= 200 or any(not ch.isprintable() for ch in text):
        raise ValueError("name: 1-200 printable characters saying what the key is for (a person or system)")
    return text


def validate_tenant(tenant: str) -> str:
    if not TENANT.fullmatch(tenant):
        raise ValueError(
            f"tenant {tenant!r}: use 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return tenant


def validate_models(models: list[str]) -> list[str]:
    if not models:
        raise ValueError("models: name at least one model (an alias, a version id, an upstream name) or '*'")
    if len(models) > MAX_MODEL_SCOPES:
        raise ValueError(f"models: at most {MAX_MODEL_SCOPES} names (use '*' for every model of the tenant)")
    bad = [m for m in models if not MODEL_SCOPE.fullmatch(m)]
    if bad:
        raise ValueError(
            f"models: {', '.join(repr(m) for m in bad)} is not a model name (lowercase letters, digits, '.', '-'; "
            "up to 72 characters) or '*'"
        )
    return [ANY_MODEL] if ANY_MODEL in models else sorted(set(models))


def validate_limits(requests_per_minute: int, tokens_per_day: int) -> tuple[int, int]:
    if not 1 <= requests_per_minute <= MAX_REQUESTS_PER_MINUTE:
        raise ValueError(f"requests_per_minute: between 1 and {MAX_REQUESTS_PER_MINUTE} (got {requests_per_minute})")
    if not 1 <= tokens_per_day <= MAX_TOKENS_PER_DAY:
        raise ValueError(f"tokens_per_day: between 1 and {MAX_TOKENS_PER_DAY} (got {tokens_per_day})")
    return requests_per_minute, tokens_per_day


@dataclass(kw_only=True, eq=False)
class ApiKey(EventRecorder):
    key_id: str
    name: str
    tenant: str
    models: list[str]
    requests_per_minute: int
    tokens_per_day: int
    key_sha256: str
    created_at: datetime
    created_by: str
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None

    @classmethod
    def create(
        cls,
        *,
        key_id: str,
        name: str,
        tenant: str,
        models: list[str],
        requests_per_minute: int,
        tokens_per_day: int,
        key_sha256: str,
        by: str,
        now: datetime,
    ) -> ApiKey:
        """Raises ValueError naming the field that is wrong."""
        if not KEY_ID.fullmatch(key_id):
            raise ValueError(f"key id {key_id!r} does not match {API_KEY_ID_PATTERN}")
        rpm, per_day = validate_limits(requests_per_minute, tokens_per_day)
        key = cls(
            key_id=key_id,
            name=validate_key_name(name),
            tenant=validate_tenant(tenant),
            models=validate_models(models),
            requests_per_minute=rpm,
            tokens_per_day=per_day,
            key_sha256=key_sha256,
            created_at=now,
            created_by=by,
        )
        key._record(
            ApiKeyCreated(
                subject=key_id,
                actor=by,
                name=key.name,
                tenant=key.tenant,
                models=list(key.models),
                requests_per_minute=rpm,
                tokens_per_day=per_day,
                key_sha256=key_sha256,
            )
        )
        return key

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def _require_active(self, action: str) -> None:
        if self.revoked_at is not None:
            raise Conflict(
                f"API key {self.key_id} was revoked at {self.revoked_at.isoformat()}; cannot {action} "
                "(create a new key instead)"
            )

    def rotate(self, *, key_sha256: str, by: str, now: datetime) -> None:
        """A new secret; the old one stops working as soon as the gateway hears of it."""
        self._require_active("rotate it")
        if key_sha256 == self.key_sha256:
            raise Conflict(f"API key {self.key_id}: the new secret is the current one; rotate with a fresh secret")
        self.key_sha256 = key_sha256
        self.rotated_at = now
        self._record(ApiKeyRotated(subject=self.key_id, actor=by, key_sha256=key_sha256))

    def revoke(self, *, by: str, reason: str, now: datetime) -> None:
        text = reason.strip()
        if not 1 <= len(text) <= MAX_REASON:
            raise ValueError(
                f"reason: say why the key is revoked, in 1-{MAX_REASON} characters (it goes to the audit ledger)"
            )
        self._require_active("revoke it again")
        self.revoked_at = now
        self.revoked_by = by
        self.revoke_reason = text
        self._record(ApiKeyRevoked(subject=self.key_id, actor=by, reason=text))
