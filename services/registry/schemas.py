"""Pydantic models at the registry's boundaries: what the HTTP API returns and accepts, what the CLI reads."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # the CLI reads these models over HTTP and should not load the ORM for it
    from services.registry.adapters.tables import JobRow


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _RowView(_Model):
    """A view whose fields are the row's attributes of the same names."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    @classmethod
    def of(cls, row: object) -> Self:
        return cls.model_validate(row)


class TransitionView(_RowView):
    from_state: str | None
    to_state: str
    actor: str
    reason: str
    at: datetime
    event_id: str


class ApprovalView(_RowView):
    approver: str
    decision: str
    comment: str
    reason: str
    override: bool
    at: datetime


class JobSummary(_Model):
    id: str
    state: str
    requester: str
    use_case: str
    base_model: str
    risk_tier: str
    advice_verdict: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: JobRow) -> JobSummary:
        return cls(
            id=row.id,
            state=row.state,
            requester=row.requester,
            use_case=row.use_case_name,
            base_model=row.base_model,
            risk_tier=row.risk_tier,
            advice_verdict=(row.advice or {}).get("verdict"),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class JobView(JobSummary):
    tier_rule: str
    tier_reason: str
    licence_id: str | None
    licence_decision: str
    advice: dict[str, Any]
    required_approvals: int
    approvals: list[ApprovalView]
    rejection_reasons: list[str]
    scan_summary: dict[str, Any] | None
    training_dataset: dict[str, Any] | None
    data_fingerprint: str | None
    training_result: dict[str, Any] | None
    approval_expires_at: datetime | None
    spec: dict[str, Any]
    history: list[TransitionView]
    version: int

    @classmethod
    def of(cls, row: JobRow) -> JobView:
        return cls(
            **JobSummary.of(row).model_dump(),
            tier_rule=row.tier_rule,
            tier_reason=row.tier_reason,
            licence_id=row.licence_id,
            licence_decision=row.licence_decision,
            advice=row.advice or {},
            required_approvals=row.required_approvals,
            approvals=[ApprovalView.of(a) for a in row.approvals],
            rejection_reasons=list(row.rejection_reasons or []),
            scan_summary=row.scan_summary,
            training_dataset=row.training_dataset,
            data_fingerprint=row.data_fingerprint,
            training_result=row.training_result,
            approval_expires_at=row.approval_expires_at,
            spec=row.spec,
            history=[TransitionView.of(t) for t in row.transitions],
            version=row.version,
        )


class PrincipalView(_RowView):
    name: str
    roles: list[str]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


class ApprovalRequest(_Model):
    """Body of POST /jobs/{id}/approvals."""

    decision: Literal["approve", "reject"]
    comment: str = Field(default="", max_length=4000)
    reason: str = Field(default="", max_length=4000)

    @model_validator(mode="after")
    def _reason_for_rejection(self) -> ApprovalRequest:
        if self.decision == "reject" and not self.reason.strip():
            raise ValueError("reason: a rejection needs a non-empty reason")
        return self


class ApprovalResult(_Model):
    job_id: str
    decision: str
    approver: str
    state: str
    approvals_so_far: int
    required_approvals: int
    override: bool
    training_requested: bool
    job: JobView
