"""The registry's use cases: intake, scan results, approval decisions, expiry, training outcomes.

Handlers (events) and the HTTP API (approvals) both call into `RegistryCore`; each call runs inside the
caller's transaction and queues its events on the caller's emitter, so state, history and outgoing events
commit together or not at all. Every state change goes through `move`, which refuses invalid transitions
and emits `job.state_changed`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy.orm import Session

from services.registry.adapters import repository
from services.registry.adapters.tables import ApprovalRow, JobRow, PrincipalRow, TransitionRow
from services.registry.domain.errors import Conflict, Forbidden, InvalidRequest
from services.registry.domain.intake import IntakeDecision, evaluate_intake
from services.registry.domain.policy import Policy, RiskRuleRegistry
from services.registry.domain.states import JobState, check_transition
from services.registry.schemas import ApprovalRequest
from shared.datasets.reference import dataset_mismatch
from shared.events.envelope import Envelope
from shared.events.payloads import (
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    DatasetScanFailed,
    DatasetScanned,
    DatasetScanRequested,
    JobAccepted,
    JobRejected,
    JobSpec,
    JobStateChanged,
    TrainingRequested,
)
from shared.training import split_seed

SYSTEM_ACTOR = "system:registry"


class Emitter(Protocol):
    def emit(
        self,
        event_type: str,
        payload: BaseModel | dict[str, Any],
        *,
        subject: str | None = None,
        actor: str | None = None,
    ) -> Envelope: ...


class DuplicateJob(ValueError):
    """A job.requested whose job_id is already taken by another request."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ApprovalOutcome:
    job_id: str
    decision: str
    approver: str
    state: str
    approvals_so_far: int
    required_approvals: int
    override: bool
    training_requested: bool
    expired: bool = False


@dataclass(frozen=True)
class RegistryCore:
    policy: Policy
    rules: RiskRuleRegistry
    approval_ttl_s: float
    clock: Callable[[], datetime] = field(default=utcnow)

    # ------------------------------------------------------------ state changes

    def move(
        self,
        session: Session,
        emitter: Emitter,
        job: JobRow,
        target: JobState,
        *,
        actor: str,
        reason: str = "",
        cause_event_id: str | None = None,
    ) -> None:
        check_transition(job.id, job.state, target)
        self._record(session, emitter, job, job.state, target, actor=actor, reason=reason, cause=cause_event_id)

    def _record(
        self,
        session: Session,
        emitter: Emitter,
        job: JobRow,
        from_state: str | None,
        target: JobState,
        *,
        actor: str,
        reason: str,
        cause: str | None,
    ) -> None:
        now = self.clock()
        envelope = emitter.emit(
            "job.state_changed",
            JobStateChanged(job_id=job.id, from_state=from_state, to_state=target.value, reason=reason),
            subject=job.id,
            actor=actor,
        )
        job.transitions.append(
            TransitionRow(
                job_id=job.id,
                from_state=from_state,
                to_state=target.value,
                actor=actor,
                reason=reason,
                at=now,
                event_id=envelope.event_id,
                cause_event_id=cause,
            )
        )
        job.state = target.value
        job.updated_at = now

    # ------------------------------------------------------------ intake

    def intake(
        self,
        session: Session,
        emitter: Emitter,
        *,
        job_id: str,
        spec: JobSpec,
        requested_by: str,
        base_is_directory: bool,
        cause_event_id: str | None = None,
    ) -> IntakeDecision:
        if repository.get_job(session, job_id) is not None:
            raise DuplicateJob(f"job_id {job_id} is already registered; a new request needs a new job id")
        decision = evaluate_intake(spec, self.policy, self.rules, base_is_directory=base_is_directory)
        now = self.clock()
        job = JobRow(
            id=job_id,
            state=JobState.REQUESTED.value,
            spec=spec.model_dump(mode="json"),
            requester=spec.requester,
            use_case_name=spec.use_case.name,
            base_model=spec.base_model,
            risk_tier=decision.tier.tier,
            tier_rule=decision.tier.rule,
            tier_reason=decision.tier.reason,
            licence_id=decision.licence.licence_id,
            licence_decision=decision.licence.decision,
            advice=decision.advice.as_dict(),
            required_approvals=decision.required_approvals,
            rejection_reasons=list(decision.reasons),
            traceparent=getattr(emitter, "trace", None),
            created_at=now,
            updated_at=now,
        )
        session.add(job)
        self._record(
            session,
            emitter,
            job,
            None,
            JobState.REQUESTED,
            actor=requested_by,
            reason="job submitted",
            cause=cause_event_id,
        )
        if not decision.accepted:
            self.move(
                session,
                emitter,
                job,
                JobState.REJECTED,
                actor=SYSTEM_ACTOR,
                reason="; ".join(decision.reasons),
                cause_event_id=cause_event_id,
            )
            emitter.emit(
                "job.rejected",
                JobRejected(job_id=job_id, stage="intake", reasons=decision.reasons),
                subject=job_id,
                actor=SYSTEM_ACTOR,
            )
            return decision
        tier = decision.tier.tier
        assert tier != "prohibited"  # a prohibited practice always lands in decision.reasons
        self.move(
            session,
            emitter,
            job,
            JobState.ACCEPTED,
            actor=SYSTEM_ACTOR,
            reason=f"intake passed: tier {tier} ({decision.tier.rule}); {decision.licence.decision}",
            cause_event_id=cause_event_id,
        )
        emitter.emit(
            "job.accepted",
            JobAccepted(
                job_id=job_id,
                risk_tier=tier,
                tier_rule=decision.tier.rule,
                licence_id=decision.licence.licence_id,
                licence_decision=decision.licence.decision,
                advice=decision.advice.as_dict(),
            ),
            subject=job_id,
            actor=SYSTEM_ACTOR,
        )
        self.move(
            session,
            emitter,
            job,
            JobState.SCANNING,
            actor=SYSTEM_ACTOR,
            reason="dataset scan requested",
            cause_event_id=cause_event_id,
        )
        emitter.emit(
            "dataset.scan.requested",
            DatasetScanRequested(job_id=job_id, dataset=spec.dataset),
            subject=job_id,
            actor=SYSTEM_ACTOR,
        )
        return decision

    # ------------------------------------------------------------ scan results

    def scan_completed(
        self, session: Session, emitter: Emitter, job: JobRow, scan: DatasetScanned, *, cause_event_id: str | None
    ) -> None:
        summary = {
            "verdict": scan.verdict,
            "record_count": scan.record_count,
            "totals": scan.totals,
            "classification": scan.classification,
            "blocking_reasons": scan.blocking_reasons,
            "fingerprint": scan.fingerprint,
            "source": scan.source.model_dump(mode="json"),
            "dataset": scan.dataset.model_dump(mode="json"),
            "report": scan.report.model_dump(mode="json"),
        }
        blocking = list(scan.blocking_reasons) if scan.verdict == "blocked" else []
        if scan.verdict == "blocked" and not blocking:
            blocking = ["dataset scan verdict: blocked (the scanner gave no reason; see its report)"]
        submitted_sha = (job.spec.get("dataset") or {}).get("sha256")
        # The scanner read other bytes than the requester declared: nothing it says covers this job.
        mismatch = dataset_mismatch(
            submitted_sha, scan.source.sha256, expected_from="the submitted job", actual_from="the scanned source"
        )
        if mismatch:
            blocking.append(f"dataset.sha256: {mismatch}")
        job.scan_summary = summary
        job.scan_verdict = scan.verdict
        if blocking:
            self._block_at_scan(session, emitter, job, blocking, cause_event_id=cause_event_id)
            return
        now = self.clock()
        expires = now + timedelta(seconds=self.approval_ttl_s)
        job.training_dataset = scan.dataset.model_dump(mode="json")
        job.data_fingerprint = scan.fingerprint
        job.approval_requested_at = now
        job.approval_expires_at = expires
        self.move(
            session,
            emitter,
            job,
            JobState.AWAITING_APPROVAL,
            actor=SYSTEM_ACTOR,
            reason=f"dataset scan verdict {scan.verdict}; {job.required_approvals} approval(s) needed",
            cause_event_id=cause_event_id,
        )
        emitter.emit(
            "approval.requested",
            ApprovalRequested(
                job_id=job.id,
                required_approvals=job.required_approvals,
                risk_tier=job.risk_tier,
                advice=job.advice,
                scan_summary=summary,
                expires_at=expires.isoformat(),
            ),
            subject=job.id,
            actor=SYSTEM_ACTOR,
        )

    def scan_failed(
        self, session: Session, emitter: Emitter, job: JobRow, failure: DatasetScanFailed, *, cause_event_id: str | None
    ) -> None:
        reasons = [f"dataset scan failed: {reason}" for reason in failure.reasons]
        self._block_at_scan(session, emitter, job, reasons, cause_event_id=cause_event_id)

    def _block_at_scan(
        self, session: Session, emitter: Emitter, job: JobRow, reasons: list[str], *, cause_event_id: str | None
    ) -> None:
        """The scan stage refused the dataset: the job is blocked and its requester told why."""
        job.rejection_reasons = reasons
        self.move(
            session,
            emitter,
            job,
            JobState.BLOCKED,
            actor=SYSTEM_ACTOR,
            reason="; ".join(reasons),
            cause_event_id=cause_event_id,
        )
        emitter.emit(
            "job.rejected",
            JobRejected(job_id=job.id, stage="scan", reasons=reasons),
            subject=job.id,
            actor=SYSTEM_ACTOR,
        )

    # ------------------------------------------------------------ approvals

    def decide(
        self, session: Session, emitter: Emitter, job: JobRow, principal: PrincipalRow, request: ApprovalRequest
    ) -> ApprovalOutcome:
        """Record one approver's decision. Raises Forbidden / Conflict / InvalidRequest before writing."""
        name = principal.name
        if principal.revoked_at is not None:
            raise Forbidden(f"principal {name!r} was revoked at {principal.revoked_at.isoformat()}")
        if "approver" not in principal.roles:
            raise Forbidden(
                f"principal {name!r} has roles [{', '.join(principal.roles)}]; deciding on a job needs the "
                "'approver' role"
            )
        if request.decision == "approve" and name == job.requester:
            raise Forbidden(f"separation of duties: {name!r} requested job {job.id} and cannot approve it")
        if job.state != JobState.AWAITING_APPROVAL:
            check_transition(
                job.id, job.state, JobState.APPROVED if request.decision == "approve" else JobState.REJECTED
            )
        previous = [a for a in job.approvals if a.approver == name]
        if previous:
            raise Conflict(f"{name!r} already decided on job {job.id} ({previous[0].decision}); one decision each")
        now = self.clock()
        if job.approval_expires_at is not None and now >= job.approval_expires_at:
            self.expire(session, emitter, job)
            return ApprovalOutcome(
                job_id=job.id,
                decision=request.decision,
                approver=name,
                state=job.state,
                approvals_so_far=self._approval_count(job),
                required_approvals=job.required_approvals,
                override=False,
                training_requested=False,
                expired=True,
            )
        if request.decision == "reject":
            return self._reject(session, emitter, job, name, request, now)
        return self._approve(session, emitter, job, name, request, now)

    @staticmethod
    def _approval_count(job: JobRow) -> int:
        return len({a.approver for a in job.approvals if a.decision == "approve"})

    def _reject(
        self, session: Session, emitter: Emitter, job: JobRow, name: str, request: ApprovalRequest, now: datetime
    ) -> ApprovalOutcome:
        reason = request.reason.strip()
        job.approvals.append(
            ApprovalRow(approver=name, decision="reject", comment=request.comment, reason=reason, at=now)
        )
        job.rejection_reasons = [f"rejected by {name}: {reason}"]
        emitter.emit(
            "approval.rejected",
            ApprovalRejected(job_id=job.id, approver=name, reason=reason),
            subject=job.id,
            actor=name,
        )
        self.move(session, emitter, job, JobState.REJECTED, actor=name, reason=reason)
        emitter.emit(
            "job.rejected",
            JobRejected(job_id=job.id, stage="approval", reasons=[f"rejected by {name}: {reason}"]),
            subject=job.id,
            actor=name,
        )
        return ApprovalOutcome(
            job_id=job.id,
            decision="reject",
            approver=name,
            state=job.state,
            approvals_so_far=self._approval_count(job),
            required_approvals=job.required_approvals,
            override=False,
            training_requested=False,
        )

    def _approve(
        self, session: Session, emitter: Emitter, job: JobRow, name: str, request: ApprovalRequest, now: datetime
    ) -> ApprovalOutcome:
        comment = request.comment.strip()
        override = bool((job.advice or {}).get("requires_override"))
        if override and not comment:
            raise InvalidRequest(
                f"comment: job {job.id} was advised '{job.advice.get('verdict')}' ("
                + "; ".join(job.advice.get("reasons", []))
                + "); approving against that advice needs an override comment"
            )
        job.approvals.append(
            ApprovalRow(approver=name, decision="approve", comment=comment, reason="", override=override, at=now)
        )
        count = self._approval_count(job)
        emitter.emit(
            "approval.granted",
            ApprovalGranted(job_id=job.id, approver=name, comment=comment, override=override, approvals_so_far=count),
            subject=job.id,
            actor=name,
        )
        training_requested = False
        if count >= job.required_approvals:
            approvers = [a.approver for a in job.approvals if a.decision == "approve"]
            self.move(
                session,
                emitter,
                job,
                JobState.APPROVED,
                actor=name,
                reason=f"approved by {', '.join(approvers)} ({count}/{job.required_approvals})",
            )
            self._request_training(session, emitter, job, approvers)
            training_requested = True
        return ApprovalOutcome(
            job_id=job.id,
            decision="approve",
            approver=name,
            state=job.state,
            approvals_so_far=count,
            required_approvals=job.required_approvals,
            override=override,
            training_requested=training_requested,
        )

    def _request_training(self, session: Session, emitter: Emitter, job: JobRow, approvers: list[str]) -> None:
        spec = JobSpec.model_validate(job.spec)
        if (
            job.training_dataset is None
            or job.data_fingerprint is None
            or job.scan_verdict not in ("clean", "redacted")
        ):
            # Only reachable if the tables were edited by hand: awaiting_approval implies a passed scan.
            raise Conflict(f"job {job.id} has no passed dataset scan on record; cannot request training")
        seed, hyperparameters = split_seed(spec.hyperparameters)  # validated at intake
        emitter.emit(
            "training.requested",
            TrainingRequested(
                job_id=job.id,
                base_model=spec.base_model,
                method=spec.method,
                hyperparameters=hyperparameters,
                dataset=job.training_dataset,
                fingerprint=job.data_fingerprint,
                scan_verdict=job.scan_verdict,
                seed=seed,
                approvers=approvers,
            ),
            subject=job.id,
            actor=SYSTEM_ACTOR,
        )
        self.move(session, emitter, job, JobState.TRAINING, actor=SYSTEM_ACTOR, reason="training requested")

    # ------------------------------------------------------------ expiry

    def expire(self, session: Session, emitter: Emitter, job: JobRow) -> None:
        requested_at = job.approval_requested_at or job.updated_at
        deadline = job.approval_expires_at.isoformat() if job.approval_expires_at else "its deadline"
        self.move(
            session,
            emitter,
            job,
            JobState.EXPIRED,
            actor=SYSTEM_ACTOR,
            reason=f"approval window closed at {deadline}",
        )
        emitter.emit(
            "approval.expired",
            ApprovalExpired(job_id=job.id, requested_at=requested_at.isoformat()),
            subject=job.id,
            actor=SYSTEM_ACTOR,
        )

    def overdue(self, session: Session) -> list[str]:
        return repository.overdue_job_ids(session, now=self.clock(), state=JobState.AWAITING_APPROVAL.value)

    # ------------------------------------------------------------ training outcomes

    def training_finished(
        self,
        session: Session,
        emitter: Emitter,
        job: JobRow,
        target: JobState,
        *,
        reason: str,
        result: dict[str, Any] | None,
        cause_event_id: str | None,
    ) -> None:
        if result is not None:
            job.training_result = result
        self.move(session, emitter, job, target, actor=SYSTEM_ACTOR, reason=reason, cause_event_id=cause_event_id)
