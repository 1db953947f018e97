"""Request and response bodies of the API key routes (entrypoints/api_keys_http.py). Secrets appear in one
place only: `ApiKeyCredentials`, returned once by create and rotate."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.registry.domain.api_keys import MAX_REASON, ApiKey
from shared.events.inference import MAX_MODEL_SCOPES, ApiKeyLimits, ModelScope
from shared.events.model_versions import TenantName


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApiKeyCreate(_Model):
    """Body of POST /keys."""

    name: str = Field(min_length=1, max_length=200, description="What the key is for (a person or system).")
    tenant: TenantName
    models: list[ModelScope] = Field(min_length=1, max_length=MAX_MODEL_SCOPES,
                                     description="Aliases, version ids, upstream route names, or '*'.")
    limits: ApiKeyLimits = Field(default_factory=ApiKeyLimits)


class ApiKeyRevoke(_Model):
    """Body of POST /keys/{key_id}/revoke."""

    reason: str = Field(min_length=1, max_length=MAX_REASON, pattern=r"\S")


class ApiKeyRotate(_Model):
    """Body of POST /keys/{key_id}/rotate: nothing to say; the registry makes the new secret."""


class ApiKeyView(_Model):
    """A key as listed: never its secret, nor the secret's hash."""

    key_id: str
    name: str
    tenant: str
    models: list[str]
    limits: ApiKeyLimits
    created_at: datetime
    created_by: str
    rotated_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyView:
        return cls(
            key_id=key.key_id,
            name=key.name,
            tenant=key.tenant,
            models=list(key.models),
            limits=ApiKeyLimits(requests_per_minute=key.requests_per_minute, tokens_per_day=key.tokens_per_day),
            created_at=key.created_at,
            created_by=key.created_by,
            rotated_at=key.rotated_at,
            revoked_at=key.revoked_at,
            revoked_by=key.revoked_by,
            revoke_reason=key.revoke_reason,
        )


class ApiKeyCredentials(_Model):
    """A key and its secret: returned once by create and rotate, never stored (only its SHA-256 is)."""

    key: ApiKeyView
    secret: str
