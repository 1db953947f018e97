"""The registry API's bodies: what the HTTP API returns and accepts, what its client (the CLI) reads.
Views are built from the domain aggregates here, at the edge."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.registry.domain.evaluation import Evaluation, EvaluationRequest
from services.registry.domain.job import Job
from services.registry.domain.principals import Principal
from shared.events.evaluation import MAX_SUITES, GateFailure, GateVerdict, SuiteSummary
from shared.events.payloads import ArtifactRef

TEXT_LIMIT = 4000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _AttributeView(_Model):
    """A view whose fields are attributes of the same names on a domain object."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    @classmethod
    def of(cls, source: object) -> Self:
        return cls.model_validate(source)


class TransitionView(_AttributeView):
    from_state: str | None
    to_state: str
    actor: str
    reason: str
    at: datetime
    event_id: str


class ApprovalView(_AttributeView):
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
    def of(cls, job: Job) -> JobSummary:
        return cls(
            id=job.id,
            state=job.state.value,
            requester=job.requester,
            use_case=job.spec.use_case.name,
            base_model=job.spec.base_model,
            risk_tier=job.risk_tier,
            advice_verdict=job.advice.get("verdict"),
            created_at=job.created_at,
            updated_at=job.updated_at,
        )


class EvaluationView(_Model):
    """One evaluation run of a job (GET /jobs/{id}/evaluations)."""

    evaluation_id: str
    status: Literal["running", "passed", "gate_failed", "error"]
    requested_by: str | None = Field(description="Who asked for it; null for the run that follows training.")
    request_id: str | None
    artifact_sha256: str | None
    suites_requested: list[str]
    started_at: datetime
    finished_at: datetime | None
    verdict: GateVerdict | None
    failing_metrics: list[GateFailure]
    suites: list[SuiteSummary]
    report: ArtifactRef | None
    report_html: ArtifactRef | None
    error: str | None

    @classmethod
    def of(cls, run: Evaluation) -> EvaluationView:
        return cls(
            evaluation_id=run.evaluation_id,
            status=run.status,
            requested_by=run.requested_by,
            request_id=run.request_id,
            artifact_sha256=run.artifact_sha256,
            suites_requested=list(run.suites_requested),
            started_at=run.started_at,
            finished_at=run.finished_at,
            verdict=None if run.verdict is None else GateVerdict.model_validate(run.verdict),
            failing_metrics=[GateFailure.model_validate(f) for f in run.failing_metrics],
            suites=[SuiteSummary.model_validate(suite) for suite in run.suites],
            report=None if run.report is None else ArtifactRef.model_validate(run.report),
            report_html=None if run.report_html is None else ArtifactRef.model_validate(run.report_html),
            error=run.error,
        )


class EvaluationSummary(_Model):
    """The job's standing verdict: its newest evaluation that reached one (`latest_evaluation` of a job)."""

    evaluation_id: str
    passed: bool
    risk_tier: str
    policy: str
    failing_metrics: list[GateFailure]
    report: ArtifactRef
    report_html: ArtifactRef
    requested_by: str | None
    finished_at: datetime

    @classmethod
    def of(cls, job: Job) -> EvaluationSummary | None:
        run = job.latest_verdict
        if run is None:
            return None
        view = EvaluationView.of(run)
        assert view.verdict and view.report and view.report_html and view.finished_at  # a verdict has them all
        return cls(
            evaluation_id=view.evaluation_id,
            passed=view.verdict.passed,
            risk_tier=view.verdict.risk_tier,
            policy=view.verdict.policy,
            failing_metrics=view.failing_metrics,
            report=view.report,
            report_html=view.report_html,
            requested_by=view.requested_by,
            finished_at=view.finished_at,
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
    cancel_requested_at: datetime | None = None
    cancel_requested_by: str | None = None
    spec: dict[str, Any]
    history: list[TransitionView]
    latest_evaluation: EvaluationSummary | None = None
    version: int

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls(
            **JobSummary.of(job).model_dump(),
            tier_rule=job.tier_rule,
            tier_reason=job.tier_reason,
            licence_id=job.licence_id,
            licence_decision=job.licence_decision,
            advice=job.advice,
            required_approvals=job.required_approvals,
            approvals=[ApprovalView.of(a) for a in job.approvals],
            rejection_reasons=list(job.rejection_reasons),
            scan_summary=job.scan_summary,
            training_dataset=job.training_dataset,
            data_fingerprint=job.data_fingerprint,
            training_result=job.training_result,
            approval_expires_at=job.approval_expires_at,
            cancel_requested_at=job.cancel_requested_at,
            cancel_requested_by=job.cancel_requested_by,
            spec=job.spec.model_dump(mode="json"),
            history=[TransitionView.of(t) for t in job.transitions],
            latest_evaluation=EvaluationSummary.of(job),
            version=job.version,
        )


class ApprovalRequest(_Model):
    """Body of POST /jobs/{id}/approvals."""

    decision: Literal["approve", "reject"]
    comment: str = Field(default="", max_length=TEXT_LIMIT)
    reason: str = Field(default="", max_length=TEXT_LIMIT)

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


class CancelRequest(_Model):
    """Body of POST /jobs/{id}/cancel."""

    reason: str = Field(default="", max_length=TEXT_LIMIT)


class CancelResult(_Model):
    job_id: str
    state: str
    training_cancel_requested: bool
    job: JobView


class EvaluationRunRequest(_Model):
    """Body of POST /jobs/{id}/evaluations: evaluate the trained adapter again."""

    suites: list[str] | None = Field(
        default=None, max_length=MAX_SUITES, description="Suites to run; every configured suite when absent."
    )
    reason: str = Field(default="", max_length=2000)


class EvaluationRequestView(_Model):
    """What POST /jobs/{id}/evaluations accepted (202): the evaluator picks it up from evaluation.requested."""

    request_id: str = Field(description="The event id of evaluation.requested; the evaluator's events name it.")
    job_id: str
    requested_by: str
    suites: list[str] | None
    reason: str
    requested_at: datetime
    state: str

    @classmethod
    def of(cls, job: Job, request: EvaluationRequest) -> EvaluationRequestView:
        return cls(
            request_id=request.request_id,
            job_id=job.id,
            requested_by=request.requested_by,
            suites=request.suites,
            reason=request.reason,
            requested_at=request.at,
            state=job.state.value,
        )


# ---------------------------------------------------------------- principals


class SigningKeyView(_AttributeView):
    key_id: str
    public_key: str
    added_at: datetime
    retired_at: datetime | None


class PrincipalView(_AttributeView):
    name: str
    roles: list[str]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    keys: list[SigningKeyView] = Field(default_factory=list)

    @classmethod
    def of(cls, principal: Principal) -> PrincipalView:  # type: ignore[override]
        return cls.model_validate(principal)


class PublicKeyField(_Model):
    public_key: str | None = Field(
        default=None, max_length=200, description="Ed25519 public key of the principal's event-signing key, hex."
    )


class PrincipalCreate(PublicKeyField):
    """Body of POST /principals."""

    name: str = Field(min_length=1, max_length=200)
    roles: list[str] = Field(min_length=1, max_length=10)


class PrincipalRotate(PublicKeyField):
    """Body of POST /principals/{name}/rotate: a new token always, a new signing key when given."""


class PrincipalRevoke(_Model):
    reason: str = Field(default="", max_length=2000)


class PrincipalCredentials(_Model):
    """A principal and its new token: returned once by create, rotate and bootstrap, never stored."""

    principal: PrincipalView
    token: str


class AdminBootstrap(_Model):
    """Body of POST /admin/bootstrap."""

    name: str = Field(min_length=1, max_length=200)
    secret: str = Field(min_length=1, max_length=200)
