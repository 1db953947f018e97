"""Evaluator-only settings (env prefix TUNEGATE_EVALUATOR_), next to the shared Settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EvaluatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEGATE_EVALUATOR_", extra="ignore")

    suites_file: Path | None = Field(default=None, description="Suite registry YAML; default: the bundled one.")
    gate_file: Path | None = Field(default=None, description="Gate policy YAML; default: the bundled one.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where the compared models run: auto = the GPU when torch sees one.")
    batch_size: int = Field(default=16, ge=1, le=512, description="Prompts per generate/score call.")
    lease_ttl_ms: int = Field(default=30_000, ge=1_000, description="A dead worker's evaluation is retaken after this.")
    heartbeat_s: float = Field(default=5.0, gt=0, description="Lease renewal and stream keep-alive cadence.")
    worker_id: str | None = Field(default=None, description="Default: host:pid:random.")
    ner: bool | None = Field(default=None, description="NER in output scanning; default: when spaCy is installed.")
    monitoring_file: Path | None = Field(default=None, description="Monitoring thresholds YAML; default: the "
                                         "bundled services/evaluator/config/monitoring.yaml.")
    monitor_interval_s: float = Field(default=86_400.0, ge=0, description="Seconds between scheduled "
                                      "re-evaluations of every deployed version; 0 = no scheduling.")
