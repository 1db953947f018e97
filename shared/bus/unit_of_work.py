"""The unit of work: a handler's effects, the inbox mark and the outbox rows commit together, and what
was emitted is published only after that commit (then marked published; the outbox relay publishes what
a crash or a Redis outage left behind)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy.exc import IntegrityError

from shared.bus.context import HandlerContext
from shared.bus.definition import TypedHandler
from shared.bus.inbox import InboxTables
from shared.bus.outbox_writer import OutboxWriter
from shared.bus.outcomes import REDIS_DOWN
from shared.config import Settings
from shared.events.envelope import Envelope
from shared.storage.db import Database
from shared.telemetry import current_traceparent

log = logging.getLogger("tunegate.bus")

Publish = Callable[[Envelope], Awaitable[object]]
PUBLISH_COALESCE_S = 0.02


class UnitOfWork:
    def __init__(
        self,
        *,
        service: str,
        db: Database,
        tables: InboxTables,
        settings: Settings,
        publish: Publish,
        publish_many: Callable[[list[Envelope]], Awaitable[object]] | None = None,
        sign: Callable[[Envelope], Envelope],
        may_emit: frozenset[str],
    ) -> None:
        self.service = service
        self.db = db
        self.tables = tables
        self.settings = settings
        self._publish = publish
        self._publish_many = publish_many
        self._sign = sign
        self.may_emit = may_emit
        self.writer = OutboxWriter(db, tables)
        self._queued: list[Envelope] = []
        self._drainer: asyncio.Task[None] | None = None

    def _context(self, **kwargs: object) -> HandlerContext:
        return HandlerContext(
            producer=self.service,
            trace=current_traceparent(),
            settings=self.settings,
            publisher=self._publish,
            may_emit=self.may_emit,
            **kwargs,  # type: ignore[arg-type]
        )

    async def publish_committed(self, envelopes: list[Envelope]) -> None:
        if not envelopes:
            return
        if self._publish_many is not None and len(envelopes) > 1:  # one round trip for the batch
            await self._publish_many(envelopes)
        else:
            for envelope in envelopes:
                await self._publish(envelope)
        self.writer.mark_published([e.event_id for e in envelopes])

    def record(self, envelopes: list[Envelope]) -> list[Envelope]:
        """Sign and commit outbox rows in one short transaction of their own (no handler, no ORM session):
        the path of an entrypoint that records many events at a high rate (the gateway's audit records).
        Durable when this returns; `publish_soon` sends them."""
        signed = [self._sign(e) for e in envelopes]
        self.writer.stage(signed)
        return signed

    def publish_soon(self, envelopes: list[Envelope]) -> None:
        """Publish committed envelopes from a background task that batches whatever queued meanwhile (one
        published-mark per batch); the caller does not wait for Redis. A failure leaves them to the relay."""
        self._queued.extend(envelopes)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain_queue())

    async def _drain_queue(self) -> None:
        # A short pause lets a burst queue up behind the first event: one published-mark for all of them.
        await asyncio.sleep(PUBLISH_COALESCE_S)
        while self._queued:
            batch = list(self._queued)
            self._queued.clear()
            await self._publish_after_commit(batch)

    @contextlib.asynccontextmanager
    async def transaction(self, *, actor: str, subject: str | None = None) -> AsyncIterator[HandlerContext]:
        """A unit of work not caused by an event (HTTP request, timer)."""
        with self.db.transaction() as session:
            ctx = self._context(default_actor=actor, default_subject=subject, session=session)
            yield ctx
            outgoing = [self._sign(e) for e in ctx.outgoing]
            self.tables.stage(session, outgoing, causation_id=None)
        await self._publish_after_commit(outgoing)

    async def drain(self) -> None:
        """Wait for background publications (at stop; what is left undone stays in the outbox)."""
        if self._drainer is not None:
            await asyncio.gather(self._drainer, return_exceptions=True)

    async def _publish_after_commit(self, envelopes: list[Envelope]) -> None:
        try:
            await self.publish_committed(envelopes)
        except REDIS_DOWN as exc:
            log.warning("publish after commit failed, outbox relay will retry: %s", exc)

    async def handle(
        self, handler: TypedHandler, envelope: Envelope, keep_alive: Callable[[], Awaitable[None]]
    ) -> None:
        """Run one handler exactly once per event_id; a redelivery re-publishes what the first run emitted
        if that never went out."""
        session = self.db.new_session()
        try:
            if self.tables.already_handled(session, envelope.event_id):
                outgoing = self.tables.unpublished_for(session, envelope.event_id)
            else:
                ctx = self._context(
                    default_actor=f"system:{self.service}",
                    default_subject=envelope.subject,
                    causation_id=envelope.event_id,
                    envelope=envelope,
                    session=session,
                    keep_alive=keep_alive,
                )
                await handler(envelope.data, ctx)
                # Signed before they are stored: the outbox row holds the exact bytes that go on the wire.
                outgoing = [self._sign(e) for e in ctx.outgoing]
                self.tables.mark_handled(session, envelope, outgoing)
                try:
                    session.commit()
                except IntegrityError:
                    # Another consumer handled the same event concurrently; its effects won.
                    session.rollback()
                    return
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        await self._publish_after_commit(outgoing)
