"""The job state machine. Later issues extend TRANSITIONS (evaluation, registration, deployment); every
move goes through `check_transition` so an invalid one is refused with the current state named."""

from __future__ import annotations

from enum import StrEnum


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
    JobState.TRAINED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

STATE_NAMES: frozenset[str] = frozenset(state.value for state in JobState)
TERMINAL: frozenset[JobState] = frozenset(state for state, targets in TRANSITIONS.items() if not targets)


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
