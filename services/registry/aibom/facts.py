"""What an AIBOM is built from: the facts the registry holds about one model version, gathered from the job,
the scanner's, trainer's and evaluator's events. Plain data, validated once here; build.py turns them into a
CycloneDX document and nothing else is consulted, so the same facts always give the same bytes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.events.payloads import SHA256_PATTERN

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class DatasetFacts(BaseModel):
    """One dataset the model was trained or evaluated on, as the scanner left it."""

    model_config = _FROZEN

    role: Literal["training", "held_out"]
    uri: str = Field(min_length=1)
    sha256: str = Field(pattern=SHA256_PATTERN)
    fingerprint: str | None = Field(default=None, pattern=SHA256_PATTERN)
    record_count: int | None = Field(default=None, ge=0)
    classification: str = Field(min_length=1)
    legal_basis: str | None = None
    scan_verdict: str | None = None
    entity_totals: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="entity type -> action -> count, from dataset.scanned."
    )
    ner: bool | None = Field(default=None, description="Whether the scan used a NER model; None when unknown.")
    ner_model: str | None = None
    ner_model_version: str | None = None
    scan_report_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)


class GateFailureFacts(BaseModel):
    model_config = _FROZEN

    metric: str = Field(min_length=1, description="suite.metric")
    rule: str
    value: float | None
    threshold: float
    base: float | None = None


class SuiteFacts(BaseModel):
    model_config = _FROZEN

    name: str = Field(min_length=1)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    base_metrics: dict[str, float | None] = Field(default_factory=dict)


class EvaluationFacts(BaseModel):
    """The evaluation whose verdict the version was registered on (evaluation.completed)."""

    model_config = _FROZEN

    evaluation_id: str = Field(min_length=1)
    policy: str
    risk_tier: str
    passed: bool
    complete: bool
    failures: list[GateFailureFacts] = Field(default_factory=list)
    suites: list[SuiteFacts] = Field(default_factory=list)
    report_uri: str = Field(min_length=1)
    report_sha256: str = Field(pattern=SHA256_PATTERN)


class DecommissioningFacts(BaseModel):
    """Who retires the version, when it is reviewed, and how long its audit trail is kept."""

    model_config = _FROZEN

    owner: str = Field(min_length=1)
    retraining_trigger: str = Field(min_length=1)
    previous_version_retirement: str = Field(min_length=1)
    audit_retention_days: int = Field(ge=1)
    review_by: date


class VersionDependencyFacts(BaseModel):
    """A registered version an rlhf policy depends on (the reward model it was trained against, the SFT version it
    started from), pinned by its artefact and AIBOM digests."""

    model_config = _FROZEN

    version_id: str = Field(min_length=1)
    artifact_sha256: str = Field(pattern=SHA256_PATTERN)
    aibom_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)


class AIBOMFacts(BaseModel):
    model_config = _FROZEN

    version_id: str = Field(min_length=1)
    model_name: str = Field(min_length=1)
    version: int = Field(ge=1)
    job_id: str = Field(min_length=1)
    registered_at: datetime

    base_model: str = Field(min_length=1)
    base_model_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    base_licence: str | None = Field(default=None, description="SPDX id of the base model's licence.")
    licence_decision: str
    base_architecture: dict[str, Any] = Field(
        default_factory=dict, description='From the base config, e.g. {"model_type": "llama", "architectures": [...]}.'
    )

    method_kind: Literal["sft", "dpo", "cpt", "reward_model", "rlhf"]
    rlhf: dict[str, Any] | None = Field(default=None, description="method.rlhf: algorithm, rewards, KL bound.")
    reward_model: VersionDependencyFacts | None = None
    start_policy: VersionDependencyFacts | None = Field(
        default=None, description="rlhf: the approved SFT version whose adapter the policy started from.")
    adapter: Literal["lora", "full"]
    differential_privacy: bool
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    seed: int
    epsilon: float | None = None
    delta: float | None = None

    artifact_uri: str = Field(min_length=1)
    artifact_sha256: str = Field(pattern=SHA256_PATTERN)
    artifact_size_bytes: int | None = Field(default=None, ge=0)

    datasets: list[DatasetFacts] = Field(min_length=1)
    evaluation: EvaluationFacts

    use_case: dict[str, Any] = Field(description="The job spec's use_case (name, description, problem, risks...).")
    risk_tier: str
    requester: str = Field(min_length=1)
    job_approvers: list[str] = Field(default_factory=list)

    library_versions: dict[str, str] = Field(default_factory=dict)
    code_commit: str | None = None
    decommissioning: DecommissioningFacts
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="What is known of the training run's footprint (device, seconds...); empty when unknown.",
    )

    @field_validator("registered_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        # The BOM's timestamp is part of its hashed bytes: a naive time would depend on the host's zone.
        if value.tzinfo is None:
            raise ValueError("registered_at must carry a timezone (UTC)")
        return value
