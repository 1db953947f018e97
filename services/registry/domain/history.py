"""One entry of an aggregate's history: a state change, who made it, why and when, and the event that recorded
it. Jobs and model versions keep the same kind of history (and the repositories store it the same way)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Transition:
    from_state: str | None
    to_state: str
    actor: str
    reason: str
    at: datetime
    event_id: str
    cause_event_id: str | None = None
