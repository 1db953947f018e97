"""The audit record of each request, written off the answer's critical path yet never lost: the event is
committed to the gateway's outbox (a local database write) before the client gets its answer, and
published to Redis by a background task; if the process dies in between, the outbox relay publishes it on
the next start. The event id is known before the answer goes out, so the provenance signature names it.

Records of requests that finish in the same turn of the event loop are committed together (group commit):
at 16 concurrent requests that is one short transaction instead of sixteen."""

from __future__ import annotations

import asyncio
from typing import Protocol

from shared.bus.context import EmitScope
from shared.events.envelope import Envelope
from shared.events.payloads import Payload
from shared.telemetry import current_traceparent


class Outbox(Protocol):
    def record(self, envelopes: list[Envelope]) -> list[Envelope]: ...

    def publish_soon(self, envelopes: list[Envelope]) -> None: ...


class Journal:
    def __init__(self, outbox: Outbox, *, producer: str, may_emit: frozenset[str]) -> None:
        self.outbox = outbox
        self.producer = producer
        self.may_emit = may_emit
        self._pending: list[tuple[Envelope, asyncio.Future[None]]] = []

    async def record(self, event_type: str, payload: Payload, *, actor: str, request_id: str) -> str:
        """Commit one event (with those of concurrent requests) and return its id once it is durable."""
        scope = EmitScope(producer=self.producer, default_actor=actor, default_subject=request_id,
                          trace=current_traceparent(), may_emit=self.may_emit)
        envelope = scope.make(event_type, payload)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._commit)  # after the callbacks already ready: they join this batch
        self._pending.append((envelope, done))
        await done
        return envelope.event_id

    def _commit(self) -> None:
        batch, self._pending = self._pending, []
        try:
            signed = self.outbox.record([envelope for envelope, _ in batch])
        except Exception as exc:  # the requests fail with it; nothing was committed
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)
        self.outbox.publish_soon(signed)
