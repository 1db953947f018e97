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
    console_session_ttl_s: int = Field(
        default=8 * 3600,
        ge=60,
        le=7 * 24 * 3600,
        description="How long a web console login lasts; after it the console asks for the token again.",
    )
    console_secure_cookies: bool = Field(
        default=False,
        description="Mark the console's cookies Secure (browsers then send them over HTTPS only): set it whenever "
        "the registry is reached over HTTPS, directly or through a proxy.",
    )
