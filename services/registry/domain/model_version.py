"""The ModelVersion aggregate: one trained artefact, the evaluation that judged it and its AIBOM, from
registration to retirement.

A version is registered when the evaluator reports a verdict over every configured suite
(`evaluation.completed` with a complete verdict); a re-run of some suites is diagnostics and registers
nothing. The version fixes what it is at registration (artefact, base, datasets, verdict, report, AIBOM,
decommissioning plan) and only its lifecycle changes afterwards. Approval follows the same rules as job
approval (domain/approvals.py); deployment under an alias is decided with the alias
(domain/deployments.py), since moving an alias changes two versions at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from services.registry.domain import events
from services.registry.domain.approvals import Approval, approvers, check_decider, check_first_decision
from services.registry.domain.errors import Conflict, InvalidRequest
from services.registry.domain.events import EventRecorder
from services.registry.domain.history import Transition
from services.registry.domain.model_states import ModelState, check_model_transition
from services.registry.domain.principals import Principal
from shared.ids import version_id_of

MAX_REASON_CHARS = 4_000
DEFAULT_REVIEW_AFTER_DAYS = 180


def review_date(registered_at: datetime, review_after_days: int | None) -> date:
    """The decommissioning plan's review date: past it, a version still in use is flagged."""
    return (registered_at + timedelta(days=review_after_days or DEFAULT_REVIEW_AFTER_DAYS)).date()


@dataclass(frozen=True)
class Registration:
    """What the registry knows of a version when it registers it, in plain JSON-able values."""

    model_name: str
    number: int
    job_id: str
    evaluation_id: str
    requester: str
    risk_tier: str
    required_approvals: int
    base_model: str
    base_model_sha256: str | None
    adapter: str
    artifact: dict[str, Any]
    aibom: dict[str, Any]
    report: dict[str, Any]
    verdict: dict[str, Any]
    dataset_fingerprints: list[str]
    decommissioning: dict[str, Any]

    @property
    def gate_passed(self) -> bool:
        return bool(self.verdict.get("passed")) and bool(self.verdict.get("complete", True))


@dataclass(kw_only=True, eq=False)
class ModelVersion(EventRecorder):
    id: str
    model_name: str
    number: int
    state: ModelState
    job_id: str
    evaluation_id: str
    requester: str
    risk_tier: str
    required_approvals: int
    gate_passed: bool
    base_model: str
    base_model_sha256: str | None
    adapter: str
    artifact: dict[str, Any]
    aibom: dict[str, Any]
    report: dict[str, Any]
    verdict: dict[str, Any]
    dataset_fingerprints: list[str]
    decommissioning: dict[str, Any]
    review_by: date
    registered_at: datetime
    updated_at: datetime
    alias: str | None = None
    tenants: list[str] = field(default_factory=list)
    retired_reason: str | None = None
    transitions: list[Transition] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)
    version: int = 0

    # ------------------------------------------------------------ the one state-changing method

    def _move(self, target: ModelState, *, actor: str, reason: str, now: datetime, initial: bool = False) -> None:
        source = None if initial else self.state
        if source is not None:
            check_model_transition(self.id, source, target)
        changed = events.ModelStateChanged(
            subject=self.id,
            actor=actor,
            from_state=None if source is None else source.value,
            to_state=target.value,
            reason=reason,
        )
        self.transitions.append(
            Transition(None if source is None else source.value, target.value, actor, reason, now, changed.event_id)
        )
        self.state = target
        self.updated_at = now
        self._record(changed)

    # ------------------------------------------------------------ registration

    @classmethod
    def register(cls, facts: Registration, *, actor: str, now: datetime) -> ModelVersion:
        plan = facts.decommissioning
        review_by = review_date(now, plan.get("review_after_days"))
        version = cls(
            id=version_id_of(facts.model_name, facts.number),
            model_name=facts.model_name,
            number=facts.number,
            state=ModelState.CANDIDATE,
            job_id=facts.job_id,
            evaluation_id=facts.evaluation_id,
            requester=facts.requester,
            risk_tier=facts.risk_tier,
            required_approvals=facts.required_approvals,
            gate_passed=facts.gate_passed,
            base_model=facts.base_model,
            base_model_sha256=facts.base_model_sha256,
            adapter=facts.adapter,
            artifact=dict(facts.artifact),
            aibom=dict(facts.aibom),
            report=dict(facts.report),
            verdict=dict(facts.verdict),
            dataset_fingerprints=list(facts.dataset_fingerprints),
            decommissioning=dict(plan),
            review_by=review_by,
            registered_at=now,
            updated_at=now,
        )
        version._record(
            events.ModelRegistered(
                subject=version.id,
                actor=actor,
                model_name=version.model_name,
                number=version.number,
                job_id=version.job_id,
                evaluation_id=version.evaluation_id,
                base_model=version.base_model,
                base_model_sha256=version.base_model_sha256,
                artifact=version.artifact,
                aibom=version.aibom,
                report=version.report,
                dataset_fingerprints=version.dataset_fingerprints,
                gate_passed=version.gate_passed,
                risk_tier=version.risk_tier,
                required_approvals=version.required_approvals,
                decommissioning=version.decommissioning,
                review_by=review_by,
            )
        )
        gate = "passed its release gate" if version.gate_passed else "FAILED its release gate (cannot be approved)"
        version._move(
            ModelState.CANDIDATE,
            actor=actor,
            reason=f"registered from job {facts.job_id}, evaluation {facts.evaluation_id}: {gate}",
            now=now,
            initial=True,
        )
        return version

    # ------------------------------------------------------------ approval

    @property
    def approvals_so_far(self) -> int:
        return len(approvers(self.approvals))

    def approve(self, approver: Principal, *, comment: str, now: datetime) -> bool:
        """One approver's approval; True when it was the last one needed (the version is now approved)."""
        subject = f"model version {self.id}"
        check_decider(approver, "approve", subject=f"job {self.job_id} (and {subject})", requester=self.requester)
        check_model_transition(self.id, self.state, ModelState.APPROVED)
        if not self.gate_passed:
            failing = ", ".join(str(f.get("metric")) for f in self.verdict.get("failures") or []) or "incomplete"
            raise Conflict(
                f"{subject} did not pass its release gate ({failing}); only gate-passing versions can be "
                "approved: fix the training job and evaluate again"
            )
        check_first_decision(self.approvals, approver.name, subject=subject)
        self.approvals.append(Approval(approver.name, "approve", comment.strip(), "", False, now))
        count = self.approvals_so_far
        self._record(
            events.ModelApprovalGranted(
                subject=self.id,
                actor=approver.name,
                comment=comment.strip(),
                approvals_so_far=count,
                required_approvals=self.required_approvals,
            )
        )
        if count < self.required_approvals:
            self.updated_at = now
            return False
        names = ", ".join(approvers(self.approvals))
        self._move(
            ModelState.APPROVED,
            actor=approver.name,
            reason=f"approved by {names} ({count}/{self.required_approvals})",
            now=now,
        )
        return True

    # ------------------------------------------------------------ serving

    def serve(
        self, *, alias: str, tenants: list[str], by: str, now: datetime, replaces: str | None, rollback: bool,
        watermark: bool = False,
    ) -> None:
        """Serve under `alias` to `tenants` (called by domain/deployments.py, which moves the alias). A version
        already serving the same alias only changes its tenants."""
        if self.state == ModelState.DEPLOYED and self.alias not in (None, alias):
            raise Conflict(
                f"model version {self.id} already serves alias {self.alias!r}; one alias per version "
                f"(retire or roll back {self.alias!r} first)"
            )
        scope = ", ".join(tenants)
        if self.state == ModelState.DEPLOYED:
            self.updated_at = now
        else:
            how = "rolled back to" if rollback else "deployed"
            self._move(
                ModelState.DEPLOYED, actor=by, reason=f"{how} as {alias!r} for tenants {scope}", now=now
            )
        self.alias, self.tenants = alias, list(tenants)
        self._record(
            events.ModelDeployed(
                subject=self.id,
                actor=by,
                alias=alias,
                tenants=list(tenants),
                base_model=self.base_model,
                adapter=self.adapter,
                artifact=self.artifact,
                replaces=replaces,
                rollback=rollback,
                watermark=watermark,
            )
        )

    def deprecate(self, *, by: str, reason: str, now: datetime) -> None:
        self._move(ModelState.DEPRECATED, actor=by, reason=reason, now=now)
        self.alias, self.tenants = None, []

    def retire(self, *, by: str, reason: str, now: datetime) -> str | None:
        """Stop serving at once and for good; returns the alias it served (which now serves nothing)."""
        text = reason.strip()
        if not text:
            raise InvalidRequest(f"reason: retiring model version {self.id} needs a non-empty reason")
        if len(text) > MAX_REASON_CHARS:
            raise InvalidRequest(f"reason: at most {MAX_REASON_CHARS} characters")
        served = self.alias if self.state == ModelState.DEPLOYED else None
        self._move(ModelState.RETIRED, actor=by, reason=f"retired by {by}: {text}", now=now)
        self.retired_reason = text
        self.alias, self.tenants = None, []
        self._record(events.ModelRetired(subject=self.id, actor=by, reason=text, alias=served))
        return served

    # ------------------------------------------------------------ review

    def review_overdue(self, today: date) -> bool:
        """Past its decommissioning plan's review date and still in use (not retired)."""
        return self.state != ModelState.RETIRED and today > self.review_by
