"""A service process on the bus: wire the parts (unit of work, dispatch, delivery loops, FastStream
subscribers), run until SIGTERM/SIGINT, stop cleanly.

The parts, each in its own module: definition (what the service brings), authentication (who may emit
what, signatures), unit_of_work (inbox/outbox transaction), dispatch (typed handlers, ack, dead letters),
delivery_loops (reclaim, keep-alive, group watchdog, outbox relay, heartbeat), publisher (signed publish)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage
from faststream.redis.message import FAKE_CONSUMER
from faststream.redis.message import RedisBatchStreamMessage as BatchOfEntries
from redis.asyncio import Redis

from shared.bus.authentication import Authenticator
from shared.bus.context import HandlerContext
from shared.bus.definition import ServiceDefinition
from shared.bus.delivery_loops import DeliveryLoops
from shared.bus.dispatch import Delivery, Dispatcher
from shared.bus.groups import ensure_groups, group_name
from shared.bus.inbox import InboxTables, inbox_tables
from shared.bus.liveness import consumer_name, ready_file_name
from shared.bus.publisher import Publisher
from shared.bus.unit_of_work import UnitOfWork
from shared.bus.wire import split_fields
from shared.config import Settings
from shared.events.envelope import Envelope
from shared.heap import freeze_startup_heap
from shared.logs import setup_logging
from shared.security.signing import KeyDirectory
from shared.storage.artifacts import ArtifactStore
from shared.storage.db import Database, create_schema
from shared.storage.private import restrict_umask
from shared.telemetry import setup_tracing

log = logging.getLogger("tunegate.bus")


async def _skip_decoding(_message: Any) -> None:
    """FastStream would JSON-decode every body for the handler's `body` argument; the dispatcher parses the
    raw envelope itself, so decoding twice would only cost throughput."""
    return None


async def _entries_as_read(message: Any) -> BatchOfEntries:
    """The batch as Redis returned it, for `on_entries`. FastStream's own batch parser re-encodes every entry
    as JSON for a handler's `body` argument, and one entry that is not UTF-8 text made it raise before any
    handler ran: the whole batch stayed pending, unlogged, until reclaimed (by default 30 s later), each of
    its events one delivery poorer. The runtime splits the entries itself (shared/bus/wire.py), one by one."""
    return BatchOfEntries(raw_message=message, body=b"", consumer=FAKE_CONSUMER, group=None)


class ServiceRuntime:
    def __init__(
        self,
        definition: ServiceDefinition,
        settings: Settings,
        redis_url: str | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        definition.check_against_roster()
        if definition.reclaim_idle_ms is not None and "reclaim_idle_ms" not in settings.model_fields_set:
            settings = settings.model_copy(update={"reclaim_idle_ms": definition.reclaim_idle_ms})
        self.definition = definition
        self.name = definition.name
        self.settings = settings
        self.redis_url = redis_url or settings.resolved_redis_url(definition.name)
        self.group = group_name(definition.name)
        self.consumer = consumer_name(definition.name, socket.gethostname(), os.getpid())
        self.streams = definition.subscribed_streams()
        self.db = Database(settings.database_url_for(definition.name))
        self.artifacts = ArtifactStore(settings.path("artifacts", ".keep").parent)
        self.tables: InboxTables = inbox_tables(definition.name)
        self.redis: Redis = Redis.from_url(self.redis_url)
        self.broker = RedisBroker(self.redis_url, logger=None)
        keys = KeyDirectory(settings.keys_dir)
        signer = keys.signer(definition.name)
        self.publisher = Publisher(self.redis_url, signer, broker=self.broker)
        self.uow = UnitOfWork(
            service=self.name,
            db=self.db,
            tables=self.tables,
            settings=settings,
            publish=self.publish,
            publish_many=self.publisher.publish_many,
            sign=signer.sign,
            may_emit=frozenset(definition.contract().emits),
        )
        principal_keys = definition.principal_keys(self.db) if definition.principal_keys else None
        tables = getattr(principal_keys, "metadata", None)
        if tables is not None:
            definition.metadata.append(tables)
        batch = definition.batch_handler
        self.dispatcher = Dispatcher(
            definition=definition,
            settings=settings,
            redis=self.redis,
            group=self.group,
            consumer=self.consumer,
            uow=self.uow,
            authenticator=authenticator or Authenticator(keys, principal_keys),
            publish=self.publish,
            batch_runner=(lambda envelopes: batch(self, envelopes)) if batch is not None else None,
        )
        self._stopping = asyncio.Event()
        self.failure: BaseException | None = None
        self._subscribers: list[Any] = []
        self.loops = DeliveryLoops(
            settings=settings,
            redis=self.redis,
            streams=self.streams,
            group=self.group,
            consumer=self.consumer,
            service=self.name,
            dispatcher=self.dispatcher,
            uow=self.uow,
            subscribers=self._subscribers,
            stopping=self._stopping,
        )

    async def publish(self, envelope: Envelope) -> None:
        await self.publisher.publish(envelope)

    def transaction(self, *, actor: str, subject: str | None = None) -> AbstractAsyncContextManager[HandlerContext]:
        """A unit of work not caused by an event (HTTP request, timer): effects + outbox commit together."""
        return self.uow.transaction(actor=actor, subject=subject)

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
            subscriber = self.broker.subscriber(stream=sub, ack_policy=AckPolicy.MANUAL, parser=_entries_as_read,
                                                decoder=_skip_decoding)
            subscriber(self._entries_handler(stream))
            self._subscribers.append(subscriber)

    def _entries_handler(self, stream: str) -> Callable[..., Any]:
        # A closure, not a default argument: FastStream injects handler parameters by name.
        async def on_entries(body: Any, msg: RedisBatchStreamMessage) -> None:
            raw = msg.raw_message
            deliveries = []
            for entry_id, fields in zip(raw["message_ids"], raw["data"], strict=True):
                payload, headers = split_fields(fields)
                deliveries.append(Delivery(stream=stream, entry_id=entry_id, body=payload, headers=headers))
            await self.dispatcher.dispatch(deliveries)

        return on_entries

    # ------------------------------------------------------------------ lifecycle

    def ready_file(self) -> Path:
        return self.settings.path("run", ready_file_name(self.name, socket.gethostname(), os.getpid()))

    async def run(self) -> None:
        # A batch service (the ledger) is idempotent by itself and emits only refusals, which go out directly:
        # it has no inbox or outbox.
        own = [] if self.definition.batch_handler is not None else [self.tables.metadata]
        for metadata in [*own, *self.definition.metadata]:
            create_schema(self.db.engine, metadata)
        await ensure_groups(self.redis, self.streams, self.group)
        self._subscribe()
        await self.broker.start()
        coroutines = [loop() for loop in self.loops.all(outbox=self.definition.batch_handler is None)]
        coroutines += [task(self) for task in self.definition.background]
        await self.loops.beat()  # the first heartbeat before "ready": status must never see one without it
        workers = [asyncio.create_task(coro) for coro in coroutines]
        for worker in workers:
            worker.add_done_callback(self._worker_ended)
        freeze_startup_heap()
        ready = self.ready_file()
        ready.write_text(json.dumps({"pid": os.getpid(), "consumer": self.consumer, "streams": self.streams}))
        log.info("service %s ready as %s on %s", self.name, self.consumer, ", ".join(self.streams))
        try:
            await self._stopping.wait()
        finally:
            ready.unlink(missing_ok=True)
            try:
                await asyncio.wait_for(self.uow.drain(), timeout=5)
            except TimeoutError:
                log.warning("background publications unfinished at stop; the outbox relay sends them next start")
            await self.broker.stop()
            if self.dispatcher.tasks:
                await asyncio.wait(list(self.dispatcher.tasks), timeout=10)
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for hook in self.definition.on_stop:
                result = hook()
                if asyncio.iscoroutine(result):
                    await result
            await self.redis.aclose()
            self.uow.writer.close()
            self.db.dispose()

    def stop(self) -> None:
        self._stopping.set()

    def _worker_ended(self, task: asyncio.Task[Any]) -> None:
        """A background task or delivery loop that dies (an HTTP API that cannot bind its port, a loop that
        raised) stops the service: a process that is up but cannot do its work must not look healthy."""
        if task.cancelled() or self._stopping.is_set():
            return
        error = task.exception()
        if error is not None:
            log.error("service %s stops: a background task failed: %s: %s", self.name, type(error).__name__,
                      error, exc_info=error)
            self.failure = error
            self._stopping.set()


def run_service(
    build: Callable[[Settings], ServiceDefinition], authenticator: Authenticator | None = None
) -> None:
    """`python -m services.<name>`: configure logs and tracing, wire the service, run until SIGTERM/SIGINT."""
    restrict_umask()  # whatever starts us (compose, Kubernetes, a shell), what we write is owner-only
    settings = Settings()
    try:
        definition = build(settings)
    except ValueError as exc:  # a configuration it cannot start with (a policy, suite or routes file): say so
        print(f"{build.__module__}: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(definition.name, settings.log_level)
    provider = setup_tracing(definition.name, settings)

    async def main() -> BaseException | None:
        runtime = ServiceRuntime(definition, settings, authenticator=authenticator)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.stop)
        await runtime.run()
        return runtime.failure

    try:
        failure = asyncio.run(main())
    finally:
        provider.shutdown()
    if failure is not None:
        raise SystemExit(1)


__all__ = ["ServiceRuntime", "run_service"]
