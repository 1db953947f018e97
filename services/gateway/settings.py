"""Gateway-only settings (env prefix TUNEGATE_GATEWAY_), next to the shared Settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

CONFIG_DIR = Path(__file__).resolve().parent / "config"


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEGATE_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 = a free port, published in run/gateway.url.")
    policies_file: Path = Field(default=CONFIG_DIR / "policies.yaml", description="Policies per tenant and model.")
    upstreams_file: Path | None = Field(default=None, description="Upstream (OpenAI-compatible) routes, YAML.")
    max_body_bytes: int = Field(default=1_048_576, ge=1_024, description="Request bodies larger are refused (413).")
    body_timeout_s: float = Field(default=30.0, gt=0, le=600,
                                  description="A body not all there this long after its headers is refused (408).")
    max_batch: int = Field(default=16, ge=1, le=256, description="Requests decoded together on one base.")
    batch_wait_ms: float = Field(default=2.0, ge=0, le=1_000, description="How long a batch waits to fill.")
    default_max_tokens: int = Field(default=128, ge=1, le=32_768)
    max_output_tokens: int = Field(default=1_024, ge=1, le=32_768, description="Hard cap whatever a policy says.")
    watermark_key: int = Field(default=15_485_863, ge=1, description="Hashing key of the text watermark.")
    holdback_chars: int = Field(default=64, ge=0, le=4_096,
                                description="Streamed text held back so no detected entity is emitted in part.")
