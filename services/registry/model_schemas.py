"""The model API's bodies (GET/POST /models..., /aliases...), built from the ModelVersion and ModelAlias
aggregates here, at the edge."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import Field

from services.registry.domain.deployments import ModelAlias
from services.registry.domain.model_version import ModelVersion
from services.registry.domain.monitoring import Flag
from services.registry.schemas import TEXT_LIMIT, ApprovalView, TransitionView, _AttributeView, _Model
from shared.events.model_versions import MAX_TENANTS, TenantName
from shared.events.payloads import ArtifactRef
from shared.ids import ModelName


class ModelVersionSummary(_Model):
    id: str
    model_name: str
    number: int
    state: str
    job_id: str
    risk_tier: str
    gate_passed: bool
    alias: str | None
    tenants: list[str]
    approvals_so_far: int
    required_approvals: int
    registered_at: datetime
    review_by: date
    review_overdue: bool
    monitoring_flag_count: int = Field(default=0, description="Recurring-monitoring reports on the version.")

    @classmethod
    def of(cls, version: ModelVersion, today: date, flag_count: int = 0) -> ModelVersionSummary:
        return cls(
            id=version.id,
            model_name=version.model_name,
            number=version.number,
            state=version.state.value,
            job_id=version.job_id,
            risk_tier=version.risk_tier,
            gate_passed=version.gate_passed,
            alias=version.alias,
            tenants=list(version.tenants),
            approvals_so_far=version.approvals_so_far,
            required_approvals=version.required_approvals,
            registered_at=version.registered_at,
            review_by=version.review_by,
            review_overdue=version.review_overdue(today),
            monitoring_flag_count=flag_count,
        )


class MonitoringFlagView(_Model):
    """A recurring-monitoring report on the version (model.drift.detected / model.memorisation.detected)."""

    kind: str
    source: str
    summary: str
    findings: list[dict[str, Any]]
    action: str = Field(description="flag | retire: what the registry policy made of it.")
    event_id: str
    evaluation_id: str | None
    at: datetime

    @classmethod
    def of(cls, flag: Flag) -> MonitoringFlagView:
        return cls(kind=flag.kind, source=flag.source, summary=flag.summary, findings=flag.findings,
                   action=flag.action, event_id=flag.event_id, evaluation_id=flag.evaluation_id, at=flag.at)


class ModelVersionView(ModelVersionSummary):
    evaluation_id: str
    requester: str
    base_model: str
    base_model_sha256: str | None
    adapter: str
    artifact: ArtifactRef
    aibom: ArtifactRef
    report: ArtifactRef
    verdict: dict[str, Any]
    dataset_fingerprints: list[str]
    decommissioning: dict[str, Any]
    retired_reason: str | None
    transitions: list[TransitionView]
    approvals: list[ApprovalView]
    monitoring_flags: list[MonitoringFlagView] = Field(default_factory=list)

    @classmethod
    def of(cls, version: ModelVersion, today: date, flags: list[Flag] | None = None) -> ModelVersionView:
        summary = ModelVersionSummary.of(version, today, len(flags or [])).model_dump()
        return cls(
            **summary,
            evaluation_id=version.evaluation_id,
            requester=version.requester,
            base_model=version.base_model,
            base_model_sha256=version.base_model_sha256,
            adapter=version.adapter,
            artifact=ArtifactRef.model_validate(version.artifact),
            aibom=ArtifactRef.model_validate(version.aibom),
            report=ArtifactRef.model_validate(version.report),
            verdict=version.verdict,
            dataset_fingerprints=version.dataset_fingerprints,
            decommissioning=version.decommissioning,
            retired_reason=version.retired_reason,
            transitions=[TransitionView.of(t) for t in version.transitions],
            approvals=[ApprovalView.of(a) for a in version.approvals],
            monitoring_flags=[MonitoringFlagView.of(f) for f in flags or []],
        )


class AliasMoveView(_AttributeView):
    version_id: str
    tenants: list[str]
    by: str
    at: datetime
    rollback_from: str | None
    watermark: bool = False


class AliasView(_AttributeView):
    name: str
    version_id: str | None
    tenants: list[str]
    updated_at: datetime
    watermark: bool
    history: list[AliasMoveView]

    @classmethod
    def of(cls, source: object) -> AliasView:
        assert isinstance(source, ModelAlias)
        return cls.model_validate(source)


class ModelApprovalRequest(_Model):
    """Body of POST /models/{id}/approvals."""

    comment: str = Field(default="", max_length=TEXT_LIMIT)


class ModelApprovalResult(_Model):
    version_id: str
    approver: str
    state: str
    approvals_so_far: int
    required_approvals: int
    approved: bool
    version: ModelVersionView


class DeploymentRequest(_Model):
    """Body of POST /models/{id}/deployments: serve the version under `alias` to `tenants`."""

    alias: ModelName
    tenants: list[TenantName] = Field(min_length=1, max_length=MAX_TENANTS)
    watermark: bool = Field(default=False, description="The gateway watermarks the text this deployment serves.")


class DeploymentResult(_Model):
    version: ModelVersionView
    alias: AliasView
    deprecated: str | None = Field(description="The version the alias served before, now deprecated.")


class RetirementRequest(_Model):
    """Body of POST /models/{id}/retirement."""

    reason: str = Field(min_length=1, max_length=TEXT_LIMIT)


class RollbackRequest(_Model):
    """Body of POST /aliases/{name}/rollback."""

    reason: str = Field(default="", max_length=TEXT_LIMIT)
