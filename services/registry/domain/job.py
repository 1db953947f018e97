"""The Job aggregate: one fine-tuning request from intake to its training outcome and the verdicts of its
evaluations.

Every method checks that its transition is allowed, changes the job and records what happened, in one
act. All state changes go through `_move`, which also records `StateChanged`, so a transition without
its event cannot exist. The repository maps rows to and from this object; the outbox turns its recorded
events into wire payloads. Evaluations are entities of the job (domain/evaluation.py says why); model
versions and deployment will be aggregates of their own that refer to a job by id, not new branches in
this class."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from services.registry.domain import events
from services.registry.domain.approvals import Approval, approvers, check_decider, check_first_decision
from services.registry.domain.errors import Conflict, Forbidden, InvalidRequest
from services.registry.domain.evaluation import Evaluation, EvaluationRequest
from services.registry.domain.events import EventRecorder
from services.registry.domain.history import Transition
from services.registry.domain.intake import IntakeDecision
from services.registry.domain.job_evaluations import JobEvaluations
from services.registry.domain.principals import Principal
from services.registry.domain.reward_models import RlhfVersions, rlhf_version_problems
from services.registry.domain.states import SYSTEM_ACTOR, JobState, check_transition
from shared.datasets.reference import dataset_mismatch
from shared.events.payloads import JobSpec
from shared.training import split_seed

PASSED_VERDICTS = ("clean", "redacted")
CANCELLABLE = (JobState.SCANNING, JobState.AWAITING_APPROVAL, JobState.TRAINING)


@dataclass(frozen=True)
class ScanResult:
    """What the scanner concluded, in the registry's terms."""

    verdict: str
    source_sha256: str
    dataset: dict[str, Any]
    fingerprint: str
    blocking_reasons: list[str]
    summary: dict[str, Any]


@dataclass(frozen=True)
class DecisionOutcome:
    decision: str
    approver: str
    approvals_so_far: int
    required_approvals: int
    override: bool
    training_requested: bool
    expired: bool = False


@dataclass(kw_only=True, eq=False)
class Job(JobEvaluations, EventRecorder):
    id: str
    state: JobState
    spec: JobSpec
    requester: str
    risk_tier: str
    tier_rule: str
    tier_reason: str
    licence_id: str | None
    licence_decision: str
    advice: dict[str, Any]
    required_approvals: int
    created_at: datetime
    updated_at: datetime
    rejection_reasons: list[str] = field(default_factory=list)
    scan_summary: dict[str, Any] | None = None
    scan_verdict: str | None = None
    training_dataset: dict[str, Any] | None = None
    data_fingerprint: str | None = None
    training_result: dict[str, Any] | None = None
    traceparent: str | None = None
    approval_requested_at: datetime | None = None
    approval_expires_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    cancel_requested_by: str | None = None
    version: int = 0
    transitions: list[Transition] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)
    evaluation_requests: list[EvaluationRequest] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    """In the order the registry first heard of them: the last one with a verdict is the job's verdict."""

    # ------------------------------------------------------------ the one state-changing method

    def _move(self, target: JobState, *, actor: str, reason: str, now: datetime, initial: bool = False) -> None:
        source: str | None = None if initial else self.state.value
        if not initial:
            check_transition(self.id, self.state.value, target)
        changed = events.StateChanged(
            subject=self.id, actor=actor, from_state=source, to_state=target.value, reason=reason
        )
        self.transitions.append(Transition(source, target.value, actor, reason, now, changed.event_id))
        self.state = target
        self.updated_at = now
        self._record(changed)

    # ------------------------------------------------------------ intake

    @classmethod
    def request(
        cls,
        *,
        job_id: str,
        spec: JobSpec,
        requester: str,
        intake: IntakeDecision,
        now: datetime,
        traceparent: str | None = None,
    ) -> Job:
        """A submitted job, judged at once: accepted (and sent to the scanner) or rejected with reasons."""
        job = cls(
            id=job_id,
            state=JobState.REQUESTED,
            spec=spec,
            requester=requester,
            risk_tier=intake.tier.tier,
            tier_rule=intake.tier.rule,
            tier_reason=intake.tier.reason,
            licence_id=intake.licence.licence_id,
            licence_decision=intake.licence.decision,
            advice=intake.advice.as_dict(),
            required_approvals=intake.required_approvals,
            created_at=now,
            updated_at=now,
            traceparent=traceparent,
        )
        job._move(JobState.REQUESTED, actor=requester, reason="job submitted", now=now, initial=True)
        if intake.accepted:
            job.accept(now)
        else:
            job.reject("intake", list(intake.reasons), actor=SYSTEM_ACTOR, now=now)
        return job

    def accept(self, now: datetime) -> None:
        if self.risk_tier == "prohibited":
            raise Conflict(f"job {self.id}: a prohibited practice can never be accepted")
        self._move(
            JobState.ACCEPTED,
            actor=SYSTEM_ACTOR,
            reason=f"intake passed: tier {self.risk_tier} ({self.tier_rule}); {self.licence_decision}",
            now=now,
        )
        self._record(
            events.JobAccepted(
                subject=self.id,
                actor=SYSTEM_ACTOR,
                risk_tier=self.risk_tier,
                tier_rule=self.tier_rule,
                licence_id=self.licence_id,
                licence_decision=self.licence_decision,
                advice=self.advice,
            )
        )
        self._move(JobState.SCANNING, actor=SYSTEM_ACTOR, reason="dataset scan requested", now=now)
        canaries = self.spec.evaluation.canaries
        self._record(
            events.ScanRequested(
                subject=self.id,
                actor=SYSTEM_ACTOR,
                dataset=self.spec.dataset.model_dump(mode="json"),
                canaries=None if canaries is None else canaries.model_dump(mode="json"),
            )
        )

    def reject(
        self, stage: str, reasons: list[str], *, actor: str, now: datetime, target: JobState = JobState.REJECTED
    ) -> None:
        """End the job at `stage` (intake, scan, approval) with its reasons told to the requester."""
        self.rejection_reasons = list(reasons)
        self._move(target, actor=actor, reason="; ".join(reasons), now=now)
        self._record(events.JobRejected(subject=self.id, actor=actor, stage=stage, reasons=list(reasons)))

    # ------------------------------------------------------------ scan

    def record_scan(self, scan: ScanResult, *, now: datetime, approval_ttl: timedelta) -> bool:
        """False when the job was cancelled while the scan ran: the late result changes nothing."""
        if self.state == JobState.CANCELLED:
            return False
        blocking = list(scan.blocking_reasons) if scan.verdict == "blocked" else []
        if scan.verdict == "blocked" and not blocking:
            blocking = ["dataset scan verdict: blocked (the scanner gave no reason; see its report)"]
        # The scanner read other bytes than the requester declared: nothing it says covers this job.
        mismatch = dataset_mismatch(
            self.spec.dataset.sha256,
            scan.source_sha256,
            expected_from="the submitted job",
            actual_from="the scanned source",
        )
        if mismatch:
            blocking.append(f"dataset.sha256: {mismatch}")
        self.scan_summary = scan.summary
        self.scan_verdict = scan.verdict
        if blocking:
            check_transition(self.id, self.state.value, JobState.BLOCKED)
            self.reject("scan", blocking, actor=SYSTEM_ACTOR, now=now, target=JobState.BLOCKED)
            return True
        check_transition(self.id, self.state.value, JobState.AWAITING_APPROVAL)
        self.training_dataset = scan.dataset
        self.data_fingerprint = scan.fingerprint
        self.approval_requested_at = now
        self.approval_expires_at = now + approval_ttl
        self._move(
            JobState.AWAITING_APPROVAL,
            actor=SYSTEM_ACTOR,
            reason=f"dataset scan verdict {scan.verdict}; {self.required_approvals} approval(s) needed",
            now=now,
        )
        self._record(
            events.ApprovalRequested(
                subject=self.id,
                actor=SYSTEM_ACTOR,
                required_approvals=self.required_approvals,
                risk_tier=self.risk_tier,
                advice=self.advice,
                scan_summary=scan.summary,
                expires_at=self.approval_expires_at,
            )
        )
        return True

    def scan_failed(self, reasons: list[str], *, now: datetime) -> bool:
        if self.state == JobState.CANCELLED:
            return False
        self.reject(
            "scan", [f"dataset scan failed: {r}" for r in reasons], actor=SYSTEM_ACTOR, now=now, target=JobState.BLOCKED
        )
        return True

    # ------------------------------------------------------------ approval

    @property
    def approvals_so_far(self) -> int:
        return len(approvers(self.approvals))

    def is_overdue(self, now: datetime) -> bool:
        return (
            self.state == JobState.AWAITING_APPROVAL
            and self.approval_expires_at is not None
            and now >= self.approval_expires_at
        )

    def decide(
        self,
        approver: Principal,
        decision: Literal["approve", "reject"],
        *,
        comment: str = "",
        reason: str = "",
        now: datetime,
        rlhf: RlhfVersions | None = None,
    ) -> DecisionOutcome:
        """One approver's decision. Separation of duties: the requester never approves its own job; N distinct
        approvers (the tier's count) move the job to training. A decision after the window closed expires
        the job instead (the expiry is the recorded outcome)."""
        name = approver.name
        check_decider(approver, decision, subject=f"job {self.id}", requester=self.requester)
        if self.state != JobState.AWAITING_APPROVAL:
            check_transition(
                self.id, self.state.value, JobState.APPROVED if decision == "approve" else JobState.REJECTED
            )
        check_first_decision(self.approvals, name, subject=f"job {self.id}")
        if self.is_overdue(now):
            self.expire(now)
            return DecisionOutcome(decision, name, self.approvals_so_far, self.required_approvals, False, False, True)
        if decision == "reject":
            return self._reject_by(name, reason.strip(), comment, now)
        return self._approve_by(name, comment.strip(), now, rlhf or RlhfVersions())

    def _reject_by(self, name: str, reason: str, comment: str, now: datetime) -> DecisionOutcome:
        if not reason:
            raise InvalidRequest("reason: a rejection needs a non-empty reason")
        self.approvals.append(Approval(name, "reject", comment, reason, False, now))
        self._record(events.ApprovalRejected(subject=self.id, actor=name, reason=reason))
        self.rejection_reasons = [f"rejected by {name}: {reason}"]
        self._move(JobState.REJECTED, actor=name, reason=reason, now=now)
        self._record(events.JobRejected(subject=self.id, actor=name, stage="approval", reasons=self.rejection_reasons))
        return DecisionOutcome("reject", name, self.approvals_so_far, self.required_approvals, False, False)

    def _approve_by(self, name: str, comment: str, now: datetime,
                    rlhf: RlhfVersions) -> DecisionOutcome:
        if problems := rlhf_version_problems(self.spec, rlhf):
            raise Conflict(f"job {self.id}: {'; '.join(problems)}")  # retired or unapproved since intake
        detectors = (self.scan_summary or {}).get("detectors")  # absent (an older scanner) = without NER
        if self.risk_tier == "high" and not (isinstance(detectors, dict) and detectors.get("ner") is True):
            raise Conflict(
                f"job {self.id} is high-risk and its dataset was scanned without NER (names and places in free "
                "text were not looked for); rescan with NER before approval"
            )
        override = bool(self.advice.get("requires_override"))
        if override and not comment:
            raise InvalidRequest(
                f"comment: job {self.id} was advised '{self.advice.get('verdict')}' ("
                + "; ".join(self.advice.get("reasons", []))
                + "); approving against that advice needs an override comment"
            )
        self.approvals.append(Approval(name, "approve", comment, "", override, now))
        count = self.approvals_so_far
        self._record(
            events.ApprovalGranted(
                subject=self.id, actor=name, comment=comment, override=override, approvals_so_far=count
            )
        )
        started = count >= self.required_approvals
        if started:
            names = approvers(self.approvals)
            self._move(
                JobState.APPROVED,
                actor=name,
                reason=f"approved by {', '.join(names)} ({count}/{self.required_approvals})",
                now=now,
            )
            self.start_training(names, now=now,
                                reward_model=rlhf.reward_model.artifact if rlhf.reward_model else None,
                                policy=rlhf.policy.artifact if rlhf.policy else None)
        return DecisionOutcome("approve", name, count, self.required_approvals, override, started)

    def expire(self, now: datetime) -> None:
        requested_at = self.approval_requested_at or self.updated_at
        deadline = self.approval_expires_at.isoformat() if self.approval_expires_at else "its deadline"
        self._move(JobState.EXPIRED, actor=SYSTEM_ACTOR, reason=f"approval window closed at {deadline}", now=now)
        self._record(events.ApprovalExpired(subject=self.id, actor=SYSTEM_ACTOR, requested_at=requested_at))

    # ------------------------------------------------------------ training

    def start_training(self, approvers: list[str], *, now: datetime, reward_model: dict[str, Any] | None = None,
                       policy: dict[str, Any] | None = None) -> None:
        if self.training_dataset is None or self.data_fingerprint is None or self.scan_verdict not in PASSED_VERDICTS:
            # Only reachable if the tables were edited by hand: awaiting_approval implies a passed scan.
            raise Conflict(f"job {self.id} has no passed dataset scan on record; cannot request training")
        seed, hyperparameters = split_seed(self.spec.hyperparameters)  # validated at intake
        self._record(
            events.TrainingRequested(
                subject=self.id,
                actor=SYSTEM_ACTOR,
                base_model=self.spec.base_model,
                method=self.spec.method.model_dump(mode="json"),
                hyperparameters=hyperparameters,
                dataset=self.training_dataset,
                fingerprint=self.data_fingerprint,
                scan_verdict=self.scan_verdict,
                seed=seed,
                approvers=approvers,
                risk_tier=self.risk_tier,
                evaluation=self.spec.evaluation.model_dump(mode="json"),
                reward_model=reward_model,
                policy=policy,
            )
        )
        self._move(JobState.TRAINING, actor=SYSTEM_ACTOR, reason="training requested", now=now)

    def finish_training(
        self, outcome: JobState, *, reason: str, now: datetime, result: dict[str, Any] | None = None
    ) -> None:
        if outcome not in (JobState.TRAINED, JobState.FAILED, JobState.CANCELLED):
            raise ValueError(f"finish_training: {outcome} is not a training outcome")
        check_transition(self.id, self.state.value, outcome)
        if result is not None:
            self.training_result = result
        self._move(outcome, actor=SYSTEM_ACTOR, reason=reason, now=now)

    # ------------------------------------------------------------ cancel

    def cancel(self, by: Principal, *, reason: str, now: datetime) -> bool:
        """The requester or an admin stops the job. Before training it ends at once; during training the
        trainer is asked to stop and reports `training.cancelled`. True when the job already ended."""
        if by.name != self.requester and "admin" not in by.roles:
            raise Forbidden(f"principal {by.name!r} may not cancel job {self.id}: only its requester or an admin may")
        if self.state not in CANCELLABLE:
            check_transition(self.id, self.state.value, JobState.CANCELLED)
        note = reason.strip() or "no reason given"
        if self.state == JobState.TRAINING:
            if self.cancel_requested_at is not None:
                raise Conflict(
                    f"job {self.id}: cancellation was already requested by {self.cancel_requested_by} at "
                    f"{self.cancel_requested_at.isoformat()}; waiting for the trainer to stop"
                )
            self.cancel_requested_at, self.cancel_requested_by = now, by.name
            self._record(events.TrainingCancelRequested(subject=self.id, actor=by.name, reason=note))
            return False
        self.cancel_requested_at, self.cancel_requested_by = now, by.name
        self._move(JobState.CANCELLED, actor=by.name, reason=f"cancelled by {by.name}: {note}", now=now)
        return True
