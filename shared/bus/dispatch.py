"""Typed dispatch: one stream entry in, at most one handler run, then ack, retry or dead letter.

For each entry: parse and validate the envelope once, authenticate it (shared/bus/authentication.py),
find the handler registered for its payload class, run it in a unit of work inside a CONSUMER span that
continues the event's trace, ack. A refused entry is recorded (`bus.event.rejected`, published before
the entry leaves the stream, with an id derived from the entry so a retry records it once) and moved to
the dead-letter stream. A failing handler leaves the entry pending for the reclaimer until it has used
its deliveries."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from redis.asyncio import Redis

from shared.bus.authentication import Authenticator, Refused
from shared.bus.definition import ServiceDefinition, TypedHandler
from shared.bus.outcomes import REDIS_DOWN, DeliveryStats, EntryOutcomes, is_outage
from shared.bus.unit_of_work import UnitOfWork
from shared.config import Settings
from shared.events.catalog import CATALOG
from shared.events.envelope import Envelope, EnvelopeError
from shared.json_input import parse_json
from shared.telemetry import context_from_traceparent, messaging_attributes

log = logging.getLogger("tunegate.bus")


@dataclass(frozen=True)
class Delivery:
    """One stream entry as received, before validation."""

    stream: str
    entry_id: bytes
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Dispatcher:
    def __init__(
        self,
        *,
        definition: ServiceDefinition,
        settings: Settings,
        redis: Redis,
        group: str,
        consumer: str,
        uow: UnitOfWork,
        authenticator: Authenticator,
        publish: Callable[[Envelope], Awaitable[object]],
        batch_runner: Callable[[list[Envelope]], Awaitable[None]] | None = None,
    ) -> None:
        self.name = definition.name
        self.settings = settings
        self.redis = redis
        self.group = group
        self.consumer = consumer
        self.uow = uow
        self.authenticator = authenticator
        self._publish = publish
        self._handlers: dict[str, TypedHandler] = definition.handlers_by_type()
        self._batch_runner = batch_runner
        self._concurrency = max(1, definition.concurrency)
        self._in_flight = asyncio.Semaphore(self._concurrency)
        self.tasks: set[asyncio.Task[None]] = set()
        # Entries this process holds (handling or waiting for a slot); kept alive so that only entries of
        # dead consumers ever look idle to a reclaimer.
        self._owned: dict[tuple[str, bytes], int] = {}
        self.stats = DeliveryStats()
        self.outcomes = EntryOutcomes(
            service=self.name, settings=settings, redis=redis, group=group, consumer=consumer,
            stats=self.stats, publish=publish,
        )
        self._tracer = trace.get_tracer(f"tunegate.{self.name}")

    # ------------------------------------------------------------------ ownership

    def owns(self, stream: str, entry_id: bytes) -> bool:
        return (stream, entry_id) in self._owned

    def owned(self) -> list[tuple[str, bytes]]:
        return list(self._owned)

    def _own(self, delivery: Delivery) -> None:
        key = (delivery.stream, delivery.entry_id)
        self._owned[key] = self._owned.get(key, 0) + 1

    def _disown(self, delivery: Delivery) -> None:
        key = (delivery.stream, delivery.entry_id)
        remaining = self._owned.get(key, 0) - 1
        if remaining > 0:
            self._owned[key] = remaining
        else:
            self._owned.pop(key, None)

    # ------------------------------------------------------------------ entry points

    async def dispatch(self, deliveries: list[Delivery]) -> None:
        """For FastStream batches and for reclaimed entries."""
        for delivery in deliveries:
            self._own(delivery)
        if self._batch_runner is not None:
            try:
                await self._handle_batch(deliveries)
            finally:
                for delivery in deliveries:
                    self._disown(delivery)
            return
        for delivery in deliveries:
            await self._in_flight.acquire()
            task = asyncio.create_task(self._guarded(delivery))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if self._concurrency <= 1:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def _guarded(self, delivery: Delivery) -> None:
        try:
            await self._handle_one(delivery)
        except REDIS_DOWN as exc:
            log.warning("redis unavailable while handling %s: %s", delivery.entry_id, exc)
        except Exception:
            log.exception("unexpected error handling %s %s", delivery.stream, delivery.entry_id)
        finally:
            self._disown(delivery)
            self._in_flight.release()

    # ------------------------------------------------------------------ checks

    async def _accept(self, delivery: Delivery, parsed: object = None) -> Envelope | None:
        """The envelope, or None once the entry was refused (recorded and dead-lettered)."""
        try:
            envelope = Envelope.from_wire(parsed if isinstance(parsed, dict) else delivery.body)
        except EnvelopeError as exc:
            await self.outcomes.refuse(delivery, f"invalid envelope: {exc}")
            return None
        try:
            self.authenticator.check(envelope)
        except Refused as refused:
            await self.outcomes.refuse(delivery, refused.reason, envelope)
            return None
        return envelope

    def _span_parent(self, delivery: Delivery, envelope: Envelope) -> str | None:
        """The sender's PRODUCER span when its header belongs to the envelope's (signed) trace."""
        header = delivery.headers.get("traceparent")
        if header and envelope.trace_id and header.split("-")[1:2] == [envelope.trace_id]:
            return header
        return envelope.trace

    # ------------------------------------------------------------------ one event, one handler

    async def _handle_one(self, delivery: Delivery) -> None:
        try:
            parsed = parse_json(delivery.body)
        except ValueError:
            parsed = None
        claimed = parsed.get("type") if isinstance(parsed, dict) else None
        if claimed in CATALOG and claimed not in self._handlers:
            await self.outcomes.ack(delivery)  # another service's event on a shared stream; the audit checks it
            return
        envelope = await self._accept(delivery, parsed)
        if envelope is None:
            return
        handler = self._handlers[envelope.type]
        extra = {"event_id": envelope.event_id, "event_type": envelope.type, "subject": envelope.subject}
        with self._tracer.start_as_current_span(
            f"process {delivery.stream}",
            context=context_from_traceparent(self._span_parent(delivery, envelope)),
            kind=SpanKind.CONSUMER,
            attributes=messaging_attributes(envelope, operation="process", group=self.group, stream=delivery.stream),
        ) as span:
            try:
                await self.uow.handle(handler, envelope, lambda: self.outcomes.keep_alive(delivery))
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                outage = _log_failure(exc, f"handler for {envelope.type}", extra)
                await self.outcomes.failed_attempt(delivery, f"{type(exc).__name__}: {exc}", outage=outage)
                return
            await self.outcomes.ack(delivery)
            self.stats.processed += 1

    # ------------------------------------------------------------------ many events, one transaction

    async def _handle_batch(self, deliveries: list[Delivery]) -> None:
        assert self._batch_runner is not None
        valid: list[tuple[Delivery, Envelope]] = []
        for delivery in deliveries:
            envelope = await self._accept(delivery)
            if envelope is not None:
                valid.append((delivery, envelope))
        if not valid:
            return
        started = time.time_ns()
        try:
            await self._batch_runner([envelope for _, envelope in valid])
        except Exception as exc:
            outage = _log_failure(exc, f"batch handler for {len(valid)} events", {})
            for delivery, _ in valid:
                await self.outcomes.failed_attempt(delivery, f"{type(exc).__name__}: {exc}", outage=outage)
            return
        by_stream: dict[str, list[bytes]] = {}
        for delivery, _ in valid:
            by_stream.setdefault(delivery.stream, []).append(delivery.entry_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xack(stream, self.group, *ids)
            await pipe.execute()
        self.stats.processed += len(valid)
        ended = time.time_ns()
        # One CONSUMER span per event, in that event's trace: a job's trace shows where it was recorded. An event
        # that carries no trace gets none (it would only start a stray one-span trace).
        for delivery, envelope in valid:
            if envelope.trace is None:
                continue
            span = self._tracer.start_span(
                f"process {delivery.stream}",
                context=context_from_traceparent(self._span_parent(delivery, envelope)),
                kind=SpanKind.CONSUMER,
                attributes=messaging_attributes(
                    envelope, operation="process", group=self.group, stream=delivery.stream
                ),
                start_time=started,
            )
            span.end(end_time=ended)


def _log_failure(exc: Exception, what: str, extra: dict[str, object]) -> bool:
    """Log a handler's failure and say whether it was an outage: one line then (the traceback says nothing the
    message does not, and an outage repeats it every reclaim round), the traceback otherwise."""
    if is_outage(exc):
        log.warning("%s: database or Redis unreachable, retried later: %s", what, str(exc).splitlines()[0][:300],
                    extra=extra)
        return True
    log.exception("%s failed", what, extra=extra)
    return False
