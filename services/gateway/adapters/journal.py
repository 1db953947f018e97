"""The audit record of each request, written off the answer's critical path yet never lost: the event is
committed to the gateway's outbox (a local database write, durable under WAL) before the client gets its
answer, and published to Redis by a background task; if the process dies in between, the outbox relay
publishes it on the next start. The event id is known before the answer goes out, so the provenance
signature can name it."""

from __future__ import annotations

from typing import Protocol

from shared.bus.context import HandlerContext
from shared.events.payloads import Payload


class TransactionRuntime(Protocol):
    def transaction(self, *, actor: str, subject: str | None = None,
                    publish_in_background: bool = False): ...  # type: ignore[no-untyped-def]


class Journal:
    def __init__(self, runtime: TransactionRuntime) -> None:
        self.runtime = runtime

    async def record(self, event_type: str, payload: Payload, *, actor: str, request_id: str) -> str:
        ctx: HandlerContext
        async with self.runtime.transaction(actor=actor, subject=request_id, publish_in_background=True) as ctx:
            envelope = ctx.emit(event_type, payload)
        return envelope.event_id
