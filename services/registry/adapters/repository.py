"""Rows <-> aggregates. Callers own the session (and so the transaction).

`save_*` writes the aggregate back onto its row (or a new one), appending the history entries the aggregate
gained; a concurrent writer is refused instead of overwriting (adapters/write_back.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session, selectinload

from services.registry.adapters.tables import (
    ApprovalRow,
    ConsoleLogoutRow,
    EvaluationRequestRow,
    EvaluationRow,
    JobRow,
    PrincipalKeyRow,
    PrincipalRow,
    TransitionRow,
)
from services.registry.adapters.write_back import unrevoked_row, versioned_row
from services.registry.domain.approvals import Approval
from services.registry.domain.errors import Conflict, NotFound
from services.registry.domain.evaluation import Evaluation, EvaluationRequest
from services.registry.domain.history import Transition
from services.registry.domain.job import Job
from services.registry.domain.principals import Principal, SigningKey, hash_token
from services.registry.domain.states import JobState
from shared.events.payloads import JobSpec

# ---------------------------------------------------------------- jobs


HISTORY = (
    selectinload(JobRow.transitions),
    selectinload(JobRow.approvals),
    selectinload(JobRow.evaluation_requests),
    selectinload(JobRow.evaluations),
)


def _job_row(session: Session, job_id: str) -> JobRow | None:
    return session.scalars(select(JobRow).where(JobRow.id == job_id).options(*HISTORY)).one_or_none()


def _ref(uri: str | None, sha256: str | None) -> dict[str, str] | None:
    return None if uri is None or sha256 is None else {"uri": uri, "sha256": sha256}


def _to_evaluation(row: EvaluationRow) -> Evaluation:
    return Evaluation(
        evaluation_id=row.evaluation_id,
        status=row.status,  # type: ignore[arg-type]
        started_at=row.started_at,
        request_id=row.request_id,
        requested_by=row.requested_by,
        artifact_sha256=row.artifact_sha256,
        suites_requested=list(row.suites_requested or []),
        finished_at=row.finished_at,
        verdict=row.verdict,
        failing_metrics=list(row.failing_metrics or []),
        suites=list(row.suites or []),
        report=_ref(row.report_uri, row.report_sha256),
        report_html=_ref(row.report_html_uri, row.report_html_sha256),
        error=row.error,
    )


def _write_evaluation(row: EvaluationRow, run: Evaluation) -> None:
    row.evaluation_id = run.evaluation_id
    row.status = run.status
    row.request_id = run.request_id
    row.requested_by = run.requested_by
    row.artifact_sha256 = run.artifact_sha256
    row.suites_requested = list(run.suites_requested)
    row.verdict = run.verdict
    row.failing_metrics = list(run.failing_metrics)
    row.suites = list(run.suites)
    row.report_uri, row.report_sha256 = (run.report["uri"], run.report["sha256"]) if run.report else (None, None)
    row.report_html_uri, row.report_html_sha256 = (
        (run.report_html["uri"], run.report_html["sha256"]) if run.report_html else (None, None)
    )
    row.error = run.error
    row.started_at = run.started_at
    row.finished_at = run.finished_at


def _to_job(row: JobRow) -> Job:
    return Job(
        id=row.id,
        state=JobState(row.state),
        spec=JobSpec.model_validate(row.spec),
        requester=row.requester,
        risk_tier=row.risk_tier,
        tier_rule=row.tier_rule,
        tier_reason=row.tier_reason,
        licence_id=row.licence_id,
        licence_decision=row.licence_decision,
        advice=dict(row.advice or {}),
        required_approvals=row.required_approvals,
        created_at=row.created_at,
        updated_at=row.updated_at,
        rejection_reasons=list(row.rejection_reasons or []),
        scan_summary=row.scan_summary,
        scan_verdict=row.scan_verdict,
        training_dataset=row.training_dataset,
        data_fingerprint=row.data_fingerprint,
        training_result=row.training_result,
        traceparent=row.traceparent,
        approval_requested_at=row.approval_requested_at,
        approval_expires_at=row.approval_expires_at,
        cancel_requested_at=row.cancel_requested_at,
        cancel_requested_by=row.cancel_requested_by,
        version=row.version,
        transitions=[
            Transition(t.from_state, t.to_state, t.actor, t.reason, t.at, t.event_id, t.cause_event_id)
            for t in row.transitions
        ],
        approvals=[
            Approval(a.approver, a.decision, a.comment, a.reason, a.override, a.at)  # type: ignore[arg-type]
            for a in row.approvals
        ],
        evaluation_requests=[
            EvaluationRequest(r.request_id, r.requested_by, r.suites, r.reason, r.at) for r in row.evaluation_requests
        ],
        evaluations=[_to_evaluation(e) for e in row.evaluations],
    )


def load_job(session: Session, job_id: str) -> Job | None:
    row = _job_row(session, job_id)
    return None if row is None else _to_job(row)


def require_job(session: Session, job_id: str) -> Job:
    job = load_job(session, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def job_exists(session: Session, job_id: str) -> bool:
    return bool(session.scalar(select(exists().where(JobRow.id == job_id))))


def list_jobs(
    session: Session,
    *,
    state: str | None = None,
    requester: str | None = None,
    risk_tier: str | None = None,
    limit: int = 500,
) -> list[Job]:
    query = (
        select(JobRow)
        .order_by(JobRow.created_at.desc(), JobRow.id.desc())
        .limit(limit)
        .options(*HISTORY)
    )
    if state is not None:
        query = query.where(JobRow.state == state)
    if requester is not None:
        query = query.where(JobRow.requester == requester)
    if risk_tier is not None:
        query = query.where(JobRow.risk_tier == risk_tier)
    return [_to_job(row) for row in session.scalars(query)]


def overdue_job_ids(session: Session, *, now: datetime) -> list[str]:
    query = select(JobRow.id).where(JobRow.state == JobState.AWAITING_APPROVAL.value, JobRow.approval_expires_at <= now)
    return list(session.scalars(query))


def save_job(session: Session, job: Job, *, cause_event_id: str | None = None) -> None:
    """Write the job back; new history entries name `cause_event_id` (the event being handled) as cause."""
    row = versioned_row(session, JobRow, job.id, read_at=job.version, what=f"job {job.id}")
    if row is None:
        row = JobRow(id=job.id)
        session.add(row)
    row.state = job.state.value
    row.spec = job.spec.model_dump(mode="json")
    row.requester = job.requester
    row.use_case_name = job.spec.use_case.name
    row.base_model = job.spec.base_model
    row.risk_tier = job.risk_tier
    row.tier_rule = job.tier_rule
    row.tier_reason = job.tier_reason
    row.licence_id = job.licence_id
    row.licence_decision = job.licence_decision
    row.advice = job.advice
    row.required_approvals = job.required_approvals
    row.rejection_reasons = list(job.rejection_reasons)
    row.scan_summary = job.scan_summary
    row.scan_verdict = job.scan_verdict
    row.training_dataset = job.training_dataset
    row.data_fingerprint = job.data_fingerprint
    row.training_result = job.training_result
    row.traceparent = job.traceparent
    row.approval_requested_at = job.approval_requested_at
    row.approval_expires_at = job.approval_expires_at
    row.cancel_requested_at = job.cancel_requested_at
    row.cancel_requested_by = job.cancel_requested_by
    row.created_at = job.created_at
    row.updated_at = job.updated_at
    for step in job.transitions[len(row.transitions) :]:
        row.transitions.append(
            TransitionRow(
                from_state=step.from_state,
                to_state=step.to_state,
                actor=step.actor,
                reason=step.reason,
                at=step.at,
                event_id=step.event_id,
                cause_event_id=step.cause_event_id or cause_event_id,
            )
        )
    for approval in job.approvals[len(row.approvals) :]:
        row.approvals.append(
            ApprovalRow(
                approver=approval.approver,
                decision=approval.decision,
                comment=approval.comment,
                reason=approval.reason,
                override=approval.override,
                at=approval.at,
            )
        )
    for request in job.evaluation_requests[len(row.evaluation_requests) :]:
        row.evaluation_requests.append(
            EvaluationRequestRow(
                request_id=request.request_id,
                requested_by=request.requested_by,
                suites=request.suites,
                reason=request.reason,
                at=request.at,
            )
        )
    # Evaluation rows change (running -> a verdict or an error): update the one on record, add the new.
    stored = {e.evaluation_id: e for e in row.evaluations}
    for run in job.evaluations:
        target = stored.get(run.evaluation_id)
        if target is None:
            target = EvaluationRow()
            row.evaluations.append(target)
        _write_evaluation(target, run)
    session.flush()
    job.version = row.version


# ---------------------------------------------------------------- principals


def _to_principal(row: PrincipalRow) -> Principal:
    return Principal(
        name=row.name,
        roles=list(row.roles),
        token_sha256=row.token_sha256,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
        keys=[SigningKey(k.key_id, k.public_key, k.added_at, k.retired_at) for k in row.keys],
    )


def load_principal(session: Session, name: str) -> Principal | None:
    row = session.get(PrincipalRow, name)
    return None if row is None else _to_principal(row)


def require_principal(session: Session, name: str) -> Principal:
    principal = load_principal(session, name)
    if principal is None:
        raise NotFound(f"principal {name!r} not found")
    return principal


def principal_by_token(session: Session, token: str) -> Principal | None:
    row = session.scalars(select(PrincipalRow).where(PrincipalRow.token_sha256 == hash_token(token))).one_or_none()
    return None if row is None else _to_principal(row)


def list_principals(session: Session) -> list[Principal]:
    rows = session.scalars(select(PrincipalRow).order_by(PrincipalRow.created_at, PrincipalRow.name))
    return [_to_principal(row) for row in rows]


def active_admin_exists(session: Session) -> bool:
    return any(p.active and "admin" in p.roles for p in list_principals(session))


def add_principal(session: Session, principal: Principal) -> None:
    if session.get(PrincipalRow, principal.name) is not None:
        raise Conflict(f"principal {principal.name!r} already exists (rotate or revoke it, or pick another name)")
    save_principal(session, principal)


def save_principal(session: Session, principal: Principal) -> None:
    row = unrevoked_row(session, PrincipalRow, principal.name, revoked_at=principal.revoked_at,
                        what=f"principal {principal.name}")
    if row is None:
        row = PrincipalRow(name=principal.name, created_at=principal.created_at, created_by=principal.created_by)
        session.add(row)
    row.roles = list(principal.roles)
    row.token_sha256 = principal.token_sha256
    row.revoked_at = principal.revoked_at
    stored = {k.key_id: k for k in row.keys}
    for key in principal.keys:
        if key.key_id in stored:
            stored[key.key_id].retired_at = key.retired_at
        else:
            row.keys.append(
                PrincipalKeyRow(
                    key_id=key.key_id, public_key=key.public_key, added_at=key.added_at, retired_at=key.retired_at
                )
            )
    session.flush()


# ---------------------------------------------------------------- console sessions ended by logout


def record_logout(session: Session, session_id: str, *, expires_at: int, now: float) -> None:
    """Remember a console session ended before its expiry, and forget those whose cookies have expired."""
    session.execute(delete(ConsoleLogoutRow).where(ConsoleLogoutRow.expires_at <= int(now)))
    if session.get(ConsoleLogoutRow, session_id) is None:
        session.add(ConsoleLogoutRow(session_id=session_id, expires_at=expires_at))
    session.flush()


def logged_out(session: Session, session_id: str) -> bool:
    return session.get(ConsoleLogoutRow, session_id) is not None
