"""The service runtime every tunegate process runs on: FastStream consumers plus what FastStream lacks.

Delivery contract (DESIGN.md "Event contract"):
- one consumer group per service, created at id 0 before the subscriber starts, re-created if lost;
- an entry is acked only after the handler's effects, the inbox mark and the outbox rows are committed;
- handlers are idempotent on event_id (inbox), emitted events are published from the outbox after commit;
- a failing entry stays pending; the reclaimer re-delivers entries idle longer than `reclaim_idle_ms`
  (including those of dead consumers) and, after `max_deliveries`, moves them to `<stream>.dlq`;
- an invalid envelope goes to the DLQ at once with the validation error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage
from faststream.redis.opentelemetry import RedisTelemetryMiddleware
from opentelemetry.trace import Status, StatusCode
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import MetaData
from sqlalchemy.exc import IntegrityError

from shared.bus.context import HandlerContext
from shared.bus.dead_letters import last_error, move_to_dlq, record_error
from shared.bus.groups import ensure_groups, group_exists, group_name
from shared.bus.inbox import InboxTables, inbox_tables
from shared.bus.wire import body_of
from shared.config import Settings
from shared.events.catalog import spec_for_model
from shared.events.envelope import Envelope, EnvelopeError
from shared.events.payloads import Payload
from shared.events.streams import ALL_STREAMS
from shared.logs import setup_logging
from shared.storage.artifacts import ArtifactStore
from shared.storage.db import Database
from shared.telemetry import attached, current_traceparent, setup_tracing, span_from

log = logging.getLogger("tunegate.bus")

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


@dataclass(frozen=True)
class Delivery:
    """One stream entry as received, before or after validation."""

    stream: str
    entry_id: bytes
    body: bytes


TypedHandler = Callable[[Any, HandlerContext], Awaitable[None]]
"""`async def on_job_requested(event: JobRequested, ctx: HandlerContext) -> None`: the typed payload and the
unit of work (the handler's transaction, its outbox, the envelope as received)."""

BatchHandler = Callable[["ServiceRuntime", list[Envelope]], Awaitable[None]]
"""Handles many events in one transaction; must itself be idempotent on event_id (the audit ledger)."""


@dataclass
class ServiceDefinition:
    name: str
    handlers: dict[type[Payload], TypedHandler] = field(default_factory=dict)
    batch_handler: BatchHandler | None = None
    streams: list[str] | None = None
    metadata: list[MetaData] = field(default_factory=list)
    background: list[Callable[[ServiceRuntime], Awaitable[None]]] = field(default_factory=list)
    concurrency: int = 1
    on_stop: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)

    def subscribed_streams(self) -> list[str]:
        if self.streams is not None:
            return list(self.streams)
        if self.batch_handler is not None:
            return [s.value for s in ALL_STREAMS]
        return sorted({spec_for_model(model).stream.value for model in self.handlers})

    def handlers_by_type(self) -> dict[str, TypedHandler]:
        return {spec_for_model(model).type: handler for model, handler in self.handlers.items()}


async def _skip_decoding(_message: Any) -> None:
    """FastStream would JSON-decode every body for the handler's `body` argument; we validate the raw
    envelope ourselves (wire.body_of + Envelope.from_wire), so decoding twice only costs throughput."""
    return None


def ready_file_name(service: str, pid: int) -> str:
    """Host and pid: pids repeat across containers that share one TUNEGATE_HOME volume."""
    return f"{service}-{socket.gethostname()}-{pid}.ready"


def heartbeat_key(service: str, consumer: str) -> str:
    return f"tunegate:heartbeat:{service}:{consumer}"


class ServiceRuntime:
    def __init__(self, definition: ServiceDefinition, settings: Settings, redis_url: str | None = None) -> None:
        self.definition = definition
        self.name = definition.name
        self.settings = settings
        self.redis_url = redis_url or settings.resolved_redis_url()
        self.group = group_name(definition.name)
        self.consumer = f"{definition.name}-{socket.gethostname()}-{os.getpid()}"
        self.streams = definition.subscribed_streams()
        self._handlers = definition.handlers_by_type()
        self.db = Database(settings.database_url_for(definition.name))
        self.artifacts = ArtifactStore(settings.path("artifacts", ".keep").parent)
        self.tables: InboxTables = inbox_tables(definition.name)
        self.redis: Redis = Redis.from_url(self.redis_url)
        self.broker = RedisBroker(self.redis_url, middlewares=[RedisTelemetryMiddleware()], logger=None)
        self._in_flight = asyncio.Semaphore(max(1, definition.concurrency))
        self._tasks: set[asyncio.Task[Any]] = set()
        # Entries this process holds (handling or waiting for a slot); kept alive so only entries of dead
        # consumers ever look idle to a reclaimer.
        self._owned: dict[tuple[str, bytes], int] = {}
        self._stopping = asyncio.Event()
        self._processed = 0
        self._failed = 0
        self._dead_lettered = 0
        self._started_at = time.time()
        self._subscribers: list[Any] = []

    # ------------------------------------------------------------------ publishing

    async def publish(self, envelope: Envelope) -> None:
        """Validate (again) and publish one envelope to its stream, carrying its trace."""
        checked = Envelope.from_wire(envelope.to_wire())
        with attached(checked.trace):
            await self.broker.publish(
                checked.to_wire(),
                stream=checked.stream,
                correlation_id=checked.event_id,
                headers={"event_type": checked.type},
            )

    async def _publish_and_mark(self, envelopes: list[Envelope]) -> None:
        if not envelopes:
            return
        for envelope in envelopes:
            await self.publish(envelope)
        with self.db.transaction() as session:
            self.tables.mark_published(session, [e.event_id for e in envelopes])

    @contextlib.asynccontextmanager
    async def transaction(self, *, actor: str, subject: str | None = None) -> AsyncIterator[HandlerContext]:
        """A unit of work not caused by an event (HTTP request, timer): effects + outbox commit together."""
        session = self.db._sessions()
        ctx = HandlerContext(
            producer=self.name,
            default_actor=actor,
            default_subject=subject,
            trace=current_traceparent(),
            session=session,
            settings=self.settings,
            publisher=self.publish,
        )
        try:
            yield ctx
            self.tables.stage(session, ctx.outgoing, causation_id=None)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        try:
            await self._publish_and_mark(ctx.outgoing)
        except REDIS_DOWN as exc:
            log.warning("publish after commit failed, outbox relay will retry: %s", exc)

    # ------------------------------------------------------------------ consuming

    async def _keep_alive(self, delivery: Delivery) -> None:
        """Reset the entry's idle time (XCLAIM JUSTID to ourselves) so no reclaimer takes a live job."""
        await self.redis.xclaim(
            delivery.stream, self.group, self.consumer, min_idle_time=0, message_ids=[delivery.entry_id], justid=True
        )

    async def _ack(self, delivery: Delivery) -> None:
        await self.redis.xack(delivery.stream, self.group, delivery.entry_id)

    async def _deliveries(self, delivery: Delivery) -> int:
        pending = await self.redis.xpending_range(
            delivery.stream, self.group, min=delivery.entry_id, max=delivery.entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 0

    async def _dead_letter(self, delivery: Delivery, reason: str, deliveries: int) -> None:
        await move_to_dlq(
            self.redis,
            stream=delivery.stream,
            group=self.group,
            consumer=self.consumer,
            entry_id=delivery.entry_id,
            body=delivery.body,
            reason=reason,
            deliveries=deliveries,
        )
        self._dead_lettered += 1
        log.error(
            "dead-lettered %s %s after %d deliveries: %s",
            delivery.stream,
            delivery.entry_id.decode(),
            deliveries,
            reason,
            extra={"stream": delivery.stream, "entry_id": delivery.entry_id.decode()},
        )

    async def _failed_attempt(self, delivery: Delivery, error: str) -> None:
        """Leave the entry pending for a retry, or dead-letter it once it has used its deliveries."""
        self._failed += 1
        deliveries = await self._deliveries(delivery)
        if deliveries >= self.settings.max_deliveries:
            await self._dead_letter(delivery, error, deliveries)
        else:
            await record_error(self.redis, self.group, delivery.stream, delivery.entry_id, error)

    def _parse(self, delivery: Delivery) -> Envelope:
        return Envelope.from_wire(delivery.body)

    async def _handle_one(self, delivery: Delivery) -> None:
        try:
            envelope = self._parse(delivery)
        except EnvelopeError as exc:
            await self._dead_letter(delivery, f"invalid envelope: {exc}", await self._deliveries(delivery))
            return
        handler = self._handlers.get(envelope.type)
        if handler is None:
            await self._ack(delivery)  # another service's event on a shared stream
            return
        extra = {"event_id": envelope.event_id, "event_type": envelope.type, "subject": envelope.subject}
        with span_from(
            envelope.trace,
            f"handle {envelope.type}",
            f"tunegate.{self.name}",
            **{
                "messaging.system": "redis",
                "messaging.destination.name": delivery.stream,
                "tunegate.event_id": envelope.event_id,
                "tunegate.subject": envelope.subject,
            },
        ) as span:
            try:
                outgoing = await self._run_handler(handler, envelope, delivery)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                log.exception("handler for %s failed", envelope.type, extra=extra)
                await self._failed_attempt(delivery, f"{type(exc).__name__}: {exc}")
                return
            try:
                await self._publish_and_mark(outgoing)
            except REDIS_DOWN as exc:
                log.warning("publish after commit failed, outbox relay will retry: %s", exc, extra=extra)
            await self._ack(delivery)
            self._processed += 1

    async def _run_handler(self, handler: TypedHandler, envelope: Envelope, delivery: Delivery) -> list[Envelope]:
        session = self.db._sessions()
        try:
            if self.tables.already_handled(session, envelope.event_id):
                # A redelivery: the work is done; re-publish what it emitted if that never went out.
                return self.tables.unpublished_for(session, envelope.event_id)
            ctx = HandlerContext(
                producer=self.name,
                default_actor=f"system:{self.name}",
                default_subject=envelope.subject,
                trace=current_traceparent(),
                causation_id=envelope.event_id,
                envelope=envelope,
                session=session,
                settings=self.settings,
                keep_alive=lambda: self._keep_alive(delivery),
                publisher=self.publish,
            )
            await handler(envelope.data, ctx)
            self.tables.mark_handled(session, envelope, ctx.outgoing)
            try:
                session.commit()
            except IntegrityError:
                # Another consumer handled the same event concurrently; its effects won.
                session.rollback()
                return []
            return ctx.outgoing
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    async def _handle_batch(self, deliveries: list[Delivery]) -> None:
        assert self.definition.batch_handler is not None
        valid: list[tuple[Delivery, Envelope]] = []
        for delivery in deliveries:
            try:
                valid.append((delivery, self._parse(delivery)))
            except EnvelopeError as exc:
                await self._dead_letter(delivery, f"invalid envelope: {exc}", await self._deliveries(delivery))
        if not valid:
            return
        try:
            await self.definition.batch_handler(self, [env for _, env in valid])
        except Exception as exc:
            log.exception("batch handler failed for %d events", len(valid))
            for delivery, _ in valid:
                await self._failed_attempt(delivery, f"{type(exc).__name__}: {exc}")
            return
        by_stream: dict[str, list[bytes]] = {}
        for delivery, _ in valid:
            by_stream.setdefault(delivery.stream, []).append(delivery.entry_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xack(stream, self.group, *ids)
            await pipe.execute()
        self._processed += len(valid)

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

    def owns(self, stream: str, entry_id: bytes) -> bool:
        return (stream, entry_id) in self._owned

    async def dispatch(self, deliveries: list[Delivery]) -> None:
        """Entry point for FastStream batches and for reclaimed entries."""
        for delivery in deliveries:
            self._own(delivery)
        if self.definition.batch_handler is not None:
            try:
                await self._handle_batch(deliveries)
            finally:
                for delivery in deliveries:
                    self._disown(delivery)
            return
        for delivery in deliveries:
            await self._in_flight.acquire()
            task = asyncio.create_task(self._guarded(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self.definition.concurrency <= 1:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

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

    # ------------------------------------------------------------------ FastStream wiring

    def _subscribe(self) -> None:
        for stream in self.streams:
            sub = StreamSub(
                stream,
                group=self.group,
                consumer=self.consumer,
                batch=True,
                max_records=self.settings.read_batch,
                polling_interval=self.settings.read_block_ms,
            )

            subscriber = self.broker.subscriber(stream=sub, ack_policy=AckPolicy.MANUAL, decoder=_skip_decoding)
            subscriber(self._entries_handler(stream))
            self._subscribers.append(subscriber)

    def _entries_handler(self, stream: str) -> Callable[..., Awaitable[None]]:
        # A closure, not a default argument: FastStream injects handler parameters by name.
        async def on_entries(body: Any, msg: RedisBatchStreamMessage) -> None:
            raw = msg.raw_message
            deliveries = [
                Delivery(stream=stream, entry_id=entry_id, body=body_of(fields))
                for entry_id, fields in zip(raw["message_ids"], raw["data"], strict=True)
            ]
            await self.dispatch(deliveries)

        return on_entries

    # ------------------------------------------------------------------ background loops

    async def _reclaim_once(self) -> int:
        handled = 0
        for stream in self.streams:
            start: bytes | str = "0-0"
            while True:
                next_id, claimed, *_ = await self.redis.xautoclaim(
                    stream,
                    self.group,
                    self.consumer,
                    min_idle_time=self.settings.reclaim_idle_ms,
                    start_id=start,
                    count=self.settings.read_batch,
                )
                batch: list[Delivery] = []
                for entry_id, fields in claimed:
                    if self.owns(stream, entry_id):
                        continue  # ours and in progress here: claiming it just refreshed its idle time
                    if fields is None:  # trimmed from the stream while pending
                        await self.redis.xack(stream, self.group, entry_id)
                        continue
                    delivery = Delivery(stream=stream, entry_id=entry_id, body=body_of(fields))
                    deliveries = await self._deliveries(delivery)
                    if deliveries > self.settings.max_deliveries:
                        # Its handler never returned (e.g. it crashes the process): stop trying.
                        reason = await last_error(self.redis, self.group, stream, entry_id)
                        await self._dead_letter(
                            delivery, reason or "consumer died while handling it on every delivery", deliveries
                        )
                        continue
                    batch.append(delivery)
                if batch:
                    log.info("reclaimed %d entries from %s", len(batch), stream, extra={"stream": stream})
                    await self.dispatch(batch)
                    handled += len(batch)
                if next_id in (b"0-0", "0-0"):
                    break
                start = next_id
        return handled

    async def _reclaimer(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._reclaim_once()
            except REDIS_DOWN as exc:
                log.warning("reclaimer: redis unavailable: %s", exc)
            except ResponseError as exc:
                log.warning("reclaimer: %s", exc)  # NOGROUP right after a Redis reset: the watchdog fixes it
            except Exception:
                log.exception("reclaimer failed")
            await self._sleep(self.settings.reclaim_interval_s)

    async def _keep_owned_alive(self) -> None:
        """Refresh the idle time of every entry this process holds, however long its handler runs."""
        interval = max(0.1, self.settings.reclaim_idle_ms / 3000)
        while not self._stopping.is_set():
            await self._sleep(interval)
            by_stream: dict[str, list[bytes]] = {}
            for stream, entry_id in list(self._owned):
                by_stream.setdefault(stream, []).append(entry_id)
            try:
                for stream, ids in by_stream.items():
                    await self.redis.xclaim(
                        stream, self.group, self.consumer, min_idle_time=0, message_ids=ids, justid=True
                    )
            except REDIS_DOWN as exc:
                log.warning("keep-alive: redis unavailable: %s", exc)
            except Exception:
                log.exception("keep-alive failed")

    async def _group_watchdog(self) -> None:
        """Re-create consumer groups a Redis restart without persistence lost, and restart our readers."""
        while not self._stopping.is_set():
            await self._sleep(self.settings.group_check_interval_s)
            try:
                missing = [s for s in self.streams if not await group_exists(self.redis, s, self.group)]
                if missing:
                    await ensure_groups(self.redis, missing, self.group)
                    log.warning("consumer group %s was lost on %s; re-created at id 0", self.group, missing)
                for subscriber in self._subscribers:
                    if not subscriber.running and not self._stopping.is_set():
                        log.warning("restarting stopped subscriber %s", subscriber)
                        await subscriber.start()
            except REDIS_DOWN as exc:
                log.warning("group watchdog: redis unavailable: %s", exc)
            except Exception:
                log.exception("group watchdog failed")

    async def _outbox_relay(self) -> None:
        """Publish outbox rows whose inline publish failed (Redis was down, process died after commit)."""
        while not self._stopping.is_set():
            await self._sleep(1.0)
            try:
                cutoff = datetime.now(UTC) - timedelta(seconds=2)
                with self.db.transaction() as session:
                    pending = self.tables.unpublished_older_than(session, cutoff)
                if pending:
                    await self._publish_and_mark(pending)
                    log.info("outbox relay published %d events", len(pending))
            except REDIS_DOWN as exc:
                log.warning("outbox relay: redis unavailable: %s", exc)
            except Exception:
                log.exception("outbox relay failed")

    async def _heartbeat(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(REDIS_DOWN):
                await self.redis.set(
                    heartbeat_key(self.name, self.consumer),
                    json.dumps(
                        {
                            "service": self.name,
                            "consumer": self.consumer,
                            "pid": os.getpid(),
                            "host": socket.gethostname(),
                            "started_at": self._started_at,
                            "processed": self._processed,
                            "failed": self._failed,
                            "dead_lettered": self._dead_lettered,
                            "in_flight": len(self._owned),
                            "at": time.time(),
                        }
                    ),
                    ex=10,
                )
            await self._sleep(2.0)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    # ------------------------------------------------------------------ lifecycle

    def ready_file(self) -> Any:
        return self.settings.path("run", ready_file_name(self.name, os.getpid()))

    async def run(self) -> None:
        metadata = [self.tables.metadata, *self.definition.metadata]
        for md in metadata:
            md.create_all(self.db.engine)
        await ensure_groups(self.redis, self.streams, self.group)
        self._subscribe()
        await self.broker.start()
        loops = [
            self._reclaimer(),
            self._keep_owned_alive(),
            self._group_watchdog(),
            self._outbox_relay(),
            self._heartbeat(),
        ]
        loops += [task(self) for task in self.definition.background]
        workers = [asyncio.create_task(coro) for coro in loops]
        ready = self.ready_file()
        ready.write_text(json.dumps({"pid": os.getpid(), "consumer": self.consumer, "streams": self.streams}))
        log.info("service %s ready as %s on %s", self.name, self.consumer, ", ".join(self.streams))
        try:
            await self._stopping.wait()
        finally:
            ready.unlink(missing_ok=True)
            await self.broker.stop()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=10)
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for hook in self.definition.on_stop:
                result = hook()
                if asyncio.iscoroutine(result):
                    await result
            await self.redis.aclose()
            self.db.dispose()

    def stop(self) -> None:
        self._stopping.set()


def run_service(build: Callable[[Settings], ServiceDefinition]) -> None:
    """`python -m services.<name>`: configure logs and tracing, wire the service, run until SIGTERM/SIGINT."""
    settings = Settings()
    definition = build(settings)
    setup_logging(definition.name, settings.log_level)
    provider = setup_tracing(definition.name, settings)

    async def main() -> None:
        runtime = ServiceRuntime(definition, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.stop)
        await runtime.run()

    try:
        asyncio.run(main())
    finally:
        provider.shutdown()
