"""Settings of the registry's HTTP API beyond the shared ones (shared/config.py): read from the
environment with the prefix TUNEGATE_REGISTRY_."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1 << 20


class RegistryAPISettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEGATE_REGISTRY_", extra="ignore")

    max_body_bytes: int = Field(
        default=MIB,
        ge=1024,
        description="Largest request body accepted; larger ones get 413 before a byte of them is read.",
    )
    public_docs: bool = Field(
        default=False,
        description="Serve /docs and /openapi.json to anyone; by default only /openapi.json, to a valid token.",
    )
