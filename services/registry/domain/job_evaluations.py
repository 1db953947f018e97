"""The evaluation stage of the Job aggregate: re-runs asked for by principals and the evaluator's reports
(started, completed with the gate's verdict, failed), and the job state they lead to. A mixin of Job
(domain/job.py), kept apart because it is a stage of its own; every move still goes through Job._move."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from services.registry.domain import access, events
from services.registry.domain.errors import Conflict, InvalidRequest
from services.registry.domain.evaluation import (
    Evaluation,
    EvaluationRequest,
    EvaluationResult,
    describe_failure,
    suite_problems,
)
from services.registry.domain.principals import Principal
from services.registry.domain.states import EVALUABLE, SYSTEM_ACTOR, JobState, check_transition


class JobEvaluations:
    """Needs of the host aggregate: its id, requester, state, evaluation lists, `_move` and `_record`."""

    id: str
    requester: str
    state: JobState
    evaluations: list[Evaluation]
    evaluation_requests: list[EvaluationRequest]
    updated_at: datetime

    if TYPE_CHECKING:
        def _move(self, target: JobState, *, actor: str, reason: str, now: datetime,
                  initial: bool = False) -> None: ...
        def _record(self, event: events.DomainEvent) -> None: ...

    # ------------------------------------------------------------ evaluation

    @property
    def latest_verdict(self) -> Evaluation | None:
        """The newest evaluation that reached a verdict over every configured suite: an evaluator error, a run
        still going or a re-run of some suites leaves the previous verdict standing."""
        return next((e for e in reversed(self.evaluations) if e.stands), None)

    def evaluation(self, evaluation_id: str) -> Evaluation | None:
        return next((e for e in self.evaluations if e.evaluation_id == evaluation_id), None)

    def request_evaluation(
        self,
        by: Principal,
        *,
        suites: list[str] | None,
        reason: str,
        known_suites: frozenset[str],
        now: datetime,
    ) -> EvaluationRequest:
        """Ask the evaluator to evaluate the trained adapter again (all configured suites, or `suites`).
        The job moves only when the evaluator reports that it started."""
        access.check_requests_evaluation(by, self.id, self.requester)
        if self.state not in EVALUABLE:
            running = [e.evaluation_id for e in self.evaluations if e.running]
            note = f" (evaluation {', '.join(running)} is running)" if running else ""
            raise Conflict(
                f"job {self.id} is in state '{self.state.value}'{note}; an evaluation can be asked for only when "
                f"the job is {', '.join(sorted(EVALUABLE))}"
            )
        problems = suite_problems(suites, known_suites, where="suites")
        if problems:
            raise InvalidRequest("; ".join(problems))
        note = reason.strip()
        asked = events.EvaluationRequested(
            subject=self.id, actor=by.name, requested_by=by.name, suites=suites, reason=note
        )
        request = EvaluationRequest(asked.event_id, by.name, None if suites is None else list(suites), note, now)
        self.evaluation_requests.append(request)
        self.updated_at = now
        self._record(asked)
        return request

    def _request_behind(self, cause_event_id: str | None) -> EvaluationRequest | None:
        return next((r for r in self.evaluation_requests if r.request_id == cause_event_id), None)

    def _new_run(self, evaluation_id: str, *, cause_event_id: str | None, now: datetime) -> Evaluation:
        request = self._request_behind(cause_event_id)
        run = Evaluation(
            evaluation_id=evaluation_id,
            status="running",
            started_at=now,
            request_id=None if request is None else request.request_id,
            requested_by=None if request is None else request.requested_by,
        )
        self.evaluations.append(run)
        return run

    def _begin(self, evaluation_id: str, *, cause_event_id: str | None, reason: str, now: datetime) -> Evaluation:
        """Record a run the registry had not heard of, moving the job to evaluating unless it already is."""
        if self.state != JobState.EVALUATING:
            self._move(JobState.EVALUATING, actor=SYSTEM_ACTOR, reason=reason, now=now)
        return self._new_run(evaluation_id, cause_event_id=cause_event_id, now=now)

    def evaluation_started(
        self,
        evaluation_id: str,
        *,
        artifact_sha256: str,
        suites: list[str],
        cause_event_id: str | None,
        now: datetime,
    ) -> bool:
        """False when this run is already on record (a redelivery, or a start reported after the outcome):
        nothing changes."""
        if self.evaluation(evaluation_id) is not None:
            return False
        asked = self._request_behind(cause_event_id)
        by = f" (asked by {asked.requested_by})" if asked is not None else ""
        running = ", ".join(suites) or "the configured suites"
        run = self._begin(
            evaluation_id,
            cause_event_id=cause_event_id,
            reason=f"evaluation {evaluation_id} started on adapter {artifact_sha256[:12]}: {running}{by}",
            now=now,
        )
        run.artifact_sha256 = artifact_sha256
        run.suites_requested = list(suites)
        self.updated_at = now
        return True

    def evaluation_completed(
        self, evaluation_id: str, result: EvaluationResult, *, cause_event_id: str | None, now: datetime
    ) -> bool:
        """Record the gate's verdict. False when this run already ended on record (a redelivery)."""
        run = self.evaluation(evaluation_id)
        if run is not None and not run.running:
            return False
        if run is None:  # the outcome overtook the start: record both, in order
            run = self._begin(
                evaluation_id,
                cause_event_id=cause_event_id,
                reason=f"evaluation {evaluation_id} completed before its start was reported",
                now=now,
            )
        run.complete(result, now)
        verdict = result.verdict
        if not verdict.get("complete", True):
            why = (f"evaluation {evaluation_id} re-ran {', '.join(s.get('name', '?') for s in result.suites)} only "
                   f"({'passed' if result.passed else 'failed'}); a partial run does not set the job's verdict")
        elif result.passed:
            why = (
                f"evaluation {evaluation_id}: gate passed ({verdict.get('checked')} checks, policy "
                f"{verdict.get('policy')}, tier {verdict.get('risk_tier')})"
            )
        else:
            failures = "; ".join(describe_failure(f) for f in result.failures) or "no failing check named"
            why = f"evaluation {evaluation_id}: gate failed: {failures}"
        self._settle(run, reason=why, now=now)
        return True

    def evaluation_failed(
        self, evaluation_id: str, reason: str, *, cause_event_id: str | None, now: datetime
    ) -> bool:
        """The evaluator could not finish (an error, not a verdict). False when this run already ended."""
        run = self.evaluation(evaluation_id)
        if run is not None and not run.running:
            return False
        if run is None:  # failed before its start was reported: on record, the job stays where it is
            if self.state not in EVALUABLE and self.state != JobState.EVALUATING:
                check_transition(self.id, self.state.value, JobState.EVALUATING)  # raises, naming the state
            run = self._new_run(evaluation_id, cause_event_id=cause_event_id, now=now)
        run.fail(reason, now)
        self.updated_at = now
        if self.state == JobState.EVALUATING:
            self._settle(run, reason=f"evaluation {evaluation_id} failed: {reason}", now=now)
        return True

    def _settle(self, ended: Evaluation, *, reason: str, now: datetime) -> None:
        """After a run ends: while another still runs the job stays evaluating (the outcome is on record);
        otherwise it takes the state of the newest verdict, or returns to trained when there is none."""
        self.updated_at = now
        if any(e.running for e in self.evaluations):
            return
        latest = self.latest_verdict
        if latest is not None and latest is not ended:
            reason += f"; the verdict of evaluation {latest.evaluation_id} ({latest.status}) stands"
        if latest is None:
            target = JobState.TRAINED
        else:
            target = JobState.EVALUATED if latest.status == "passed" else JobState.GATE_FAILED
        self._move(target, actor=SYSTEM_ACTOR, reason=reason, now=now)
