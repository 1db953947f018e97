"""The model-version lifecycle: candidate -> approved -> deployed -> deprecated -> retired.

A deprecated version may be deployed again (a rollback, or an explicit redeploy); any version that is not
retired may be retired; retired is final. Every move goes through `check_model_transition`, so an invalid
one is refused with the current state and the allowed moves named."""

from __future__ import annotations

from enum import StrEnum


class ModelState(StrEnum):
    CANDIDATE = "candidate"
    APPROVED = "approved"
    DEPLOYED = "deployed"
    DEPRECATED = "deprecated"
    RETIRED = "retired"


MODEL_TRANSITIONS: dict[ModelState, frozenset[ModelState]] = {
    ModelState.CANDIDATE: frozenset({ModelState.APPROVED, ModelState.RETIRED}),
    ModelState.APPROVED: frozenset({ModelState.DEPLOYED, ModelState.RETIRED}),
    ModelState.DEPLOYED: frozenset({ModelState.DEPRECATED, ModelState.RETIRED}),
    ModelState.DEPRECATED: frozenset({ModelState.DEPLOYED, ModelState.RETIRED}),
    ModelState.RETIRED: frozenset(),
}
MODEL_STATE_NAMES: frozenset[str] = frozenset(state.value for state in ModelState)


class InvalidModelTransition(ValueError):
    def __init__(self, version_id: str, current: ModelState, target: ModelState) -> None:
        self.version_id, self.current, self.target = version_id, current, target
        allowed = sorted(MODEL_TRANSITIONS[current])
        hint = f"allowed next states: {', '.join(allowed)}" if allowed else "it is a final state"
        super().__init__(
            f"model version {version_id} is in state '{current.value}'; cannot move to '{target.value}' ({hint})"
        )


def check_model_transition(version_id: str, current: ModelState, target: ModelState) -> None:
    if target not in MODEL_TRANSITIONS[current]:
        raise InvalidModelTransition(version_id, current, target)
