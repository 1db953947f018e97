"""Trainer-only settings (env prefix TUNEGATE_TRAINER_), next to the shared Settings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TrainerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEGATE_TRAINER_", extra="ignore")

    lease_ttl_ms: int = Field(default=30_000, ge=1_000, description="A dead worker's job is retaken after this.")
    heartbeat_s: float = Field(default=5.0, gt=0, description="Lease renewal and stream keep-alive cadence.")
    worker_id: str | None = Field(default=None, description="Default: host:pid:random.")
