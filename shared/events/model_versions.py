"""Wire types of the model registry: the payloads of the `model.*` events (tunegate.models stream).

A model version is one trained artefact with the evaluation that judged it. Its id is
`<model name>.v<number>`; the model name is the job spec's `model_name` (or a slug of its use case's name);
an alias is the name gateway clients call (`support-triage`) and moves between versions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shared.events.decommissioning import DecommissioningPlan
from shared.events.payloads import SHA256_PATTERN, ArtifactRef, JobId, Payload
from shared.ids import ModelName, ModelVersionId

MAX_TENANTS = 100
ModelLifecycleState = Literal["candidate", "approved", "deployed", "deprecated", "retired"]


TenantName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]


class ModelRegistered(Payload):
    version_id: ModelVersionId
    model_name: ModelName
    version: int = Field(ge=1)
    job_id: JobId
    evaluation_id: str = Field(min_length=1, max_length=80)
    base_model: str = Field(min_length=1, max_length=4_096)
    base_model_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    artifact: ArtifactRef
    aibom: ArtifactRef = Field(description="The CycloneDX 1.6 AIBOM: the ledger commits to its sha256.")
    dataset_fingerprints: list[str] = Field(default_factory=list, max_length=10)
    gate_passed: bool
    report: ArtifactRef = Field(description="The evaluation report the verdict rests on.")
    risk_tier: Literal["minimal", "limited", "high"]
    required_approvals: int = Field(ge=1)
    decommissioning: DecommissioningPlan
    review_by: str = Field(description="ISO date: the version is flagged as overdue for review after it.")


class ModelStateChanged(Payload):
    version_id: ModelVersionId
    from_state: ModelLifecycleState | None
    to_state: ModelLifecycleState
    reason: str = Field(default="", max_length=4_000)


class ModelApprovalGranted(Payload):
    version_id: ModelVersionId
    approver: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=8_000)
    approvals_so_far: int = Field(ge=1)
    required_approvals: int = Field(ge=1)


class ModelDeployed(Payload):
    """The alias now serves this version to these tenants (the gateway loads base + artefact)."""

    version_id: ModelVersionId
    alias: ModelName
    tenants: list[TenantName] = Field(min_length=1, max_length=MAX_TENANTS)
    base_model: str = Field(min_length=1, max_length=4_096)
    adapter: Literal["lora", "full"]
    artifact: ArtifactRef
    replaces: ModelVersionId | None = Field(default=None, description="The version the alias served before.")
    rollback: bool = False
    watermark: bool = Field(default=False, description="The gateway marks this version's text with a "
                            "statistical watermark (Kirchenbauer et al. 2023).")


class ModelRetired(Payload):
    """The version must not be served any more, from now on."""

    version_id: ModelVersionId
    reason: str = Field(min_length=1, max_length=4_000)
    alias: ModelName | None = Field(default=None, description="The alias it served, which now serves nothing.")
