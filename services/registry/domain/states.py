"""The job state machine. Later issues extend TRANSITIONS (registration, deployment); every move goes
through `check_transition` so an invalid one is refused with the current state named.

Evaluation: a trained job moves to `evaluating` when the evaluator starts, and to `evaluated` or
`gate_failed` on its verdict; an evaluator error (no verdict) returns it to where the last verdict left
it (`trained` when there is none). A verdict can be re-examined: evaluated, gate_failed and trained jobs
may be evaluated again."""

from __future__ import annotations

from enum import StrEnum

SYSTEM_ACTOR = "system:registry"
"""The actor of the moves the registry makes on its own (not on a principal's request)."""


class JobState(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SCANNING = "scanning"
    BLOCKED = "blocked"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    EXPIRED = "expired"
    TRAINING = "training"
    TRAINED = "trained"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EVALUATING = "evaluating"
    EVALUATED = "evaluated"
    GATE_FAILED = "gate_failed"


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.REQUESTED: frozenset({JobState.ACCEPTED, JobState.REJECTED}),
    JobState.ACCEPTED: frozenset({JobState.SCANNING}),
    JobState.SCANNING: frozenset({JobState.AWAITING_APPROVAL, JobState.BLOCKED, JobState.CANCELLED}),
    JobState.AWAITING_APPROVAL: frozenset({JobState.APPROVED, JobState.REJECTED, JobState.EXPIRED, JobState.CANCELLED}),
    JobState.APPROVED: frozenset({JobState.TRAINING}),
    JobState.TRAINING: frozenset({JobState.TRAINED, JobState.FAILED, JobState.CANCELLED}),
    JobState.REJECTED: frozenset(),
    JobState.BLOCKED: frozenset(),
    JobState.EXPIRED: frozenset(),
    JobState.TRAINED: frozenset({JobState.EVALUATING}),
    JobState.EVALUATING: frozenset({JobState.EVALUATED, JobState.GATE_FAILED, JobState.TRAINED}),
    JobState.EVALUATED: frozenset({JobState.EVALUATING}),
    JobState.GATE_FAILED: frozenset({JobState.EVALUATING}),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

STATE_NAMES: frozenset[str] = frozenset(state.value for state in JobState)
TERMINAL: frozenset[JobState] = frozenset(state for state, targets in TRANSITIONS.items() if not targets)
EVALUABLE: frozenset[JobState] = frozenset({JobState.TRAINED, JobState.EVALUATED, JobState.GATE_FAILED})
"""States from which an evaluation may start (or be asked for again)."""


class InvalidTransition(ValueError):
    """A move the state machine does not allow from the job's current state."""

    def __init__(self, job_id: str, current: str, target: str) -> None:
        self.job_id = job_id
        self.current = current
        self.target = target
        allowed = sorted(TRANSITIONS.get(JobState(current), frozenset())) if current in STATE_NAMES else []
        hint = f"allowed next states: {', '.join(allowed)}" if allowed else "it is a final state"
        super().__init__(f"job {job_id} is in state '{current}'; cannot move to '{target}' ({hint})")


def check_transition(job_id: str, current: str, target: JobState) -> None:
    if current not in STATE_NAMES or target not in TRANSITIONS[JobState(current)]:
        raise InvalidTransition(job_id, current, target.value)
