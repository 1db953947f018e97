"""What happens to an entry once its fate is known: ack, keep alive, retry later, dead-letter, or refuse.

A refusal is recorded on the bus (`bus.event.rejected`, published before the entry leaves the stream,
with an id derived from the entry so a retry records it once) and then dead-lettered, so deleting the
dead letter cannot hide the attempt: the audit ledger keeps the record."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.bus.dead_letters import move_to_dlq, record_error
from shared.config import Settings
from shared.events.envelope import Envelope
from shared.events.payloads import BusEventDeadLettered, BusEventRejected
from shared.json_input import parse_json
from shared.storage.db import database_unavailable

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
"""Redis unreachable: refused, reset, timed out (the bus loops log these in one line and go on)."""

OUTAGES: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, ConnectionError)
"""Failures that are the infrastructure's, not the event's: Redis or a peer unreachable (the database's are
told apart by `database_unavailable`). Narrower than REDIS_DOWN on purpose: a handler's FileNotFoundError is an
OSError and may well be the event's."""


def is_outage(exc: BaseException) -> bool:
    """Whether a handler failed because its database or Redis was unreachable, or either refused writes for
    want of disk (SQLITE_FULL, MISCONF): the exception itself or one it was explicitly raised from. A statement
    the database refused ("no such table") is the event's failure, and is dead-lettered in the end."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if (isinstance(current, OUTAGES) or database_unavailable(current)
                or (isinstance(current, ResponseError) and str(current).startswith("MISCONF"))):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False

if TYPE_CHECKING:
    from shared.bus.dispatch import Delivery

log = logging.getLogger("tunegate.bus")

_REJECTION_NAMESPACE = uuid.UUID("5b0c1c1e-7f1d-4a55-9a8e-0b7d2c6f4e11")


@dataclass
class DeliveryStats:
    processed: int = 0
    failed: int = 0
    dead_lettered: int = 0
    rejected: int = 0


class EntryOutcomes:
    def __init__(
        self,
        *,
        service: str,
        settings: Settings,
        redis: Redis,
        group: str,
        consumer: str,
        stats: DeliveryStats,
        publish: Callable[[Envelope], Awaitable[object]],
    ) -> None:
        self.name = service
        self.settings = settings
        self.redis = redis
        self.group = group
        self.consumer = consumer
        self.stats = stats
        self._publish = publish

    async def ack(self, delivery: Delivery) -> None:
        await self.redis.xack(delivery.stream, self.group, delivery.entry_id)

    async def keep_alive(self, delivery: Delivery) -> None:
        """Reset the entry's idle time (XCLAIM JUSTID to ourselves) so no reclaimer takes a live job."""
        await self.redis.xclaim(
            delivery.stream, self.group, self.consumer, min_idle_time=0, message_ids=[delivery.entry_id], justid=True
        )

    async def deliveries_of(self, delivery: Delivery) -> int:
        pending = await self.redis.xpending_range(
            delivery.stream, self.group, min=delivery.entry_id, max=delivery.entry_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 0

    async def _record(
        self, kind: str, delivery: Delivery, reason: str, envelope: Envelope | None, deliveries: int | None
    ) -> None:
        """Put what happened to an entry on the bus, for the ledger, before the entry leaves its stream. The
        id is derived from (service, stream, entry, kind), so a retry after a crash records it only once."""
        entry = delivery.entry_id.decode()
        claimed_type, claimed_producer = (envelope.type, envelope.producer[:220]) if envelope else _claims(delivery)
        fields = {
            "stream": delivery.stream,
            "entry_id": entry,
            "raw_sha256": hashlib.sha256(delivery.body).hexdigest(),
            "reason": reason[:2000],
            "claimed_type": claimed_type,
            "claimed_producer": claimed_producer,
            "rejected_by": self.name,
        }
        payload = BusEventRejected(**fields) if deliveries is None else BusEventDeadLettered(
            **fields, deliveries=deliveries
        )
        await self._publish(
            Envelope(
                event_id=str(uuid.uuid5(_REJECTION_NAMESPACE, f"{self.name}|{delivery.stream}|{entry}|{kind}")),
                type=kind,
                producer=self.name,
                actor=f"system:{self.name}",
                subject=f"{delivery.stream}/{entry}",
                payload=payload.model_dump(mode="json"),
            )
        )

    async def refuse(self, delivery: Delivery, reason: str, envelope: Envelope | None = None) -> None:
        """Record the refusal on the bus, then dead-letter the entry."""
        await self._record("bus.event.rejected", delivery, reason, envelope, None)
        self.stats.rejected += 1
        await self._move(delivery, f"refused: {reason}", await self.deliveries_of(delivery))

    async def dead_letter(self, delivery: Delivery, reason: str, deliveries: int) -> None:
        """A valid event whose handler failed on every delivery: recorded on the bus, then dead-lettered."""
        await self._record("bus.event.dead_lettered", delivery, reason, None, deliveries)
        await self._move(delivery, reason, deliveries)

    async def _move(self, delivery: Delivery, reason: str, deliveries: int) -> None:
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
        self.stats.dead_lettered += 1
        log.error(
            "dead-lettered %s %s after %d deliveries: %s",
            delivery.stream,
            delivery.entry_id.decode(),
            deliveries,
            reason,
            extra={"stream": delivery.stream, "entry_id": delivery.entry_id.decode()},
        )

    async def failed_attempt(self, delivery: Delivery, error: str, *, outage: bool = False) -> None:
        """Leave the entry pending for a retry, or dead-letter it once it has used its deliveries. A failure
        during an outage (`is_outage`) uses none: the event is not at fault, and a database down for longer
        than max_deliveries reclaim rounds must not send a job's next step to the dead letters."""
        self.stats.failed += 1
        deliveries = await self.deliveries_of(delivery)
        if outage:
            await record_error(self.redis, self.group, delivery.stream, delivery.entry_id, error)
            # XCLAIM to ourselves with RETRYCOUNT puts the delivery count back as it was before this attempt
            # (and restarts the idle clock: the reclaimer retries it after reclaim_idle_ms, here or elsewhere).
            await self.redis.xclaim(
                delivery.stream, self.group, self.consumer, min_idle_time=0, message_ids=[delivery.entry_id],
                justid=True, retrycount=max(0, deliveries - 1),
            )
            return
        if deliveries >= self.settings.max_deliveries:
            await self.dead_letter(delivery, error, deliveries)
        else:
            await record_error(self.redis, self.group, delivery.stream, delivery.entry_id, error)


def _claims(delivery: Delivery) -> tuple[str | None, str | None]:
    """What an entry says it is, read without trusting it (for the record of a failed valid event)."""
    try:
        data = parse_json(delivery.body)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    claimed_type, producer = data.get("type"), data.get("producer")
    return (
        claimed_type[:100] if isinstance(claimed_type, str) else None,
        producer[:220] if isinstance(producer, str) else None,
    )
