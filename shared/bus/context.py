"""What a handler sees: the event, a transaction on the service's own database, and an outbox to emit into.

Emitted events are stored in the service's outbox in the same transaction as the handler's effects and
the inbox mark, and published after commit; a redelivered event therefore re-publishes the same events
(same event_ids) instead of redoing the work, and consumers de-duplicate on event_id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.events.envelope import Envelope


@dataclass
class EmitScope:
    """Collects events to publish after the current transaction commits."""

    producer: str
    default_actor: str
    default_subject: str | None = None
    trace: str | None = None
    causation_id: str | None = None
    outgoing: list[Envelope] = field(default_factory=list)
    may_emit: frozenset[str] | None = None
    """The types this service declares in shared/roster.py; None only in unit tests of a handler."""

    def make(
        self,
        event_type: str,
        payload: BaseModel | dict[str, Any],
        *,
        subject: str | None = None,
        actor: str | None = None,
    ) -> Envelope:
        """Build an envelope carrying this scope's trace and causation, without queueing it."""
        if self.may_emit is not None and event_type not in self.may_emit:
            raise ValueError(f"{self.producer} may not emit {event_type}: not among its types in shared/roster.py")
        body = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
        target = subject or self.default_subject
        if target is None:
            raise ValueError(f"emit({event_type}): subject is required (no default subject in this scope)")
        return Envelope(
            type=event_type,
            producer=self.producer,
            actor=actor or self.default_actor,
            subject=target,
            trace=self.trace,
            causation_id=self.causation_id,
            payload=body,
        )

    def emit(
        self,
        event_type: str,
        payload: BaseModel | dict[str, Any],
        *,
        subject: str | None = None,
        actor: str | None = None,
    ) -> Envelope:
        """Queue an event for publication after the transaction commits."""
        envelope = self.make(event_type, payload, subject=subject, actor=actor)
        self.outgoing.append(envelope)
        return envelope


@dataclass
class HandlerContext(EmitScope):
    """Per-event context passed to a handler."""

    envelope: Envelope | None = None
    session: Session | None = None
    settings: Settings | None = None
    keep_alive: Callable[[], Awaitable[None]] | None = None
    publisher: Callable[[Envelope], Awaitable[None]] | None = None

    async def publish_now(self, envelope: Envelope) -> None:
        """Publish immediately, outside the transaction: for facts that must be seen live (progress,
        started, checkpointed). Consumers still de-duplicate on event_id."""
        if self.publisher is None:
            raise RuntimeError("publish_now: this context has no publisher (unit test without a bus?)")
        await self.publisher(envelope)

    @property
    def event(self) -> Envelope:
        assert self.envelope is not None
        return self.envelope

    @property
    def db(self) -> Session:
        assert self.session is not None
        return self.session

    async def still_mine(self) -> None:
        """Long handlers call this periodically so the reclaimer does not hand the entry to another consumer."""
        if self.keep_alive is not None:
            await self.keep_alive()

