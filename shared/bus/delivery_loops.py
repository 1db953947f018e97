"""The background loops that give the bus the guarantees FastStream does not: reclaim entries of dead
consumers (and dead-letter those that used their deliveries), keep entries this process holds alive,
re-create consumer groups Redis lost (and restart FastStream subscribers that stopped on NOGROUP),
publish what the outbox still holds, and announce liveness."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.bus.dead_letters import last_error
from shared.bus.dispatch import Delivery, Dispatcher
from shared.bus.groups import ensure_groups, group_exists
from shared.bus.liveness import HEARTBEAT_INTERVAL_S, HEARTBEAT_TTL_S, heartbeat_key
from shared.bus.outcomes import REDIS_DOWN
from shared.bus.unit_of_work import UnitOfWork
from shared.bus.wire import split_fields
from shared.config import Settings
from shared.storage.db import DATABASE_UNAVAILABLE

log = logging.getLogger("tunegate.bus")

OUTBOX_PRUNE_INTERVAL_S = 60.0


class DeliveryLoops:
    def __init__(
        self,
        *,
        settings: Settings,
        redis: Redis,
        streams: list[str],
        group: str,
        consumer: str,
        service: str,
        dispatcher: Dispatcher,
        uow: UnitOfWork,
        subscribers: list[Any],
        stopping: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.streams = streams
        self.group = group
        self.consumer = consumer
        self.service = service
        self.dispatcher = dispatcher
        self.uow = uow
        self.subscribers = subscribers
        self.stopping = stopping
        self.started_at = time.time()

    def all(self, outbox: bool = True) -> list[Callable[[], Awaitable[None]]]:
        loops = [self.reclaimer, self.keep_owned_alive, self.group_watchdog, self.heartbeat]
        return [*loops, self.outbox_relay, self.outbox_pruner] if outbox else loops

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)

    async def _every(self, seconds: float, name: str, step: Callable[[], Awaitable[object]], first: bool) -> None:
        """Run `step` every `seconds` until stopped; one failed round is logged and the next one retries."""
        if not first:
            await self._sleep(seconds)
        while not self.stopping.is_set():
            try:
                await step()
            except REDIS_DOWN as exc:
                log.warning("%s: redis unavailable: %s", name, exc)
            except ResponseError as exc:
                log.warning("%s: %s", name, exc)  # NOGROUP right after a Redis reset: the watchdog fixes it
            except DATABASE_UNAVAILABLE as exc:
                log.warning("%s: database unavailable: %s", name, str(exc).splitlines()[0][:300])
            except Exception:
                log.exception("%s failed", name)
            await self._sleep(seconds)

    # ------------------------------------------------------------------ reclaim

    async def reclaim_once(self) -> int:
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
                    if self.dispatcher.owns(stream, entry_id):
                        continue  # ours and in progress here: claiming it just refreshed its idle time
                    if fields is None:  # trimmed from the stream while pending
                        await self.redis.xack(stream, self.group, entry_id)
                        continue
                    body, headers = split_fields(fields)
                    delivery = Delivery(stream=stream, entry_id=entry_id, body=body, headers=headers)
                    deliveries = await self.dispatcher.outcomes.deliveries_of(delivery)
                    if deliveries > self.settings.max_deliveries:
                        # Its handler never returned (it crashes the process, say): stop trying.
                        reason = await last_error(self.redis, self.group, stream, entry_id)
                        await self.dispatcher.outcomes.dead_letter(
                            delivery, reason or "consumer died while handling it on every delivery", deliveries
                        )
                        continue
                    batch.append(delivery)
                if batch:
                    log.info("reclaimed %d entries from %s", len(batch), stream, extra={"stream": stream})
                    await self.dispatcher.dispatch(batch)
                    handled += len(batch)
                if next_id in (b"0-0", "0-0"):
                    break
                start = next_id
        return handled

    async def reclaimer(self) -> None:
        await self._every(self.settings.reclaim_interval_s, "reclaimer", self.reclaim_once, first=True)

    # ------------------------------------------------------------------ keep-alive

    async def _refresh_owned(self) -> None:
        by_stream: dict[str, list[bytes]] = {}
        for stream, entry_id in self.dispatcher.owned():
            by_stream.setdefault(stream, []).append(entry_id)
        for stream, ids in by_stream.items():
            await self.redis.xclaim(stream, self.group, self.consumer, min_idle_time=0, message_ids=ids, justid=True)

    async def keep_owned_alive(self) -> None:
        """Refresh the idle time of every entry this process holds, however long its handler runs."""
        interval = max(0.1, self.settings.reclaim_idle_ms / 3000)
        await self._every(interval, "keep-alive", self._refresh_owned, first=False)

    # ------------------------------------------------------------------ groups

    async def _check_groups(self) -> None:
        missing = [s for s in self.streams if not await group_exists(self.redis, s, self.group)]
        if missing:
            await ensure_groups(self.redis, missing, self.group)
            log.warning("consumer group %s was lost on %s; re-created at id 0", self.group, missing)
        for subscriber in self.subscribers:
            if not subscriber.running and not self.stopping.is_set():
                log.warning("restarting stopped subscriber %s", subscriber)
                await subscriber.start()

    async def group_watchdog(self) -> None:
        """Re-create consumer groups a Redis restart without persistence lost, and restart our readers."""
        await self._every(self.settings.group_check_interval_s, "group watchdog", self._check_groups, first=False)

    # ------------------------------------------------------------------ outbox

    async def _relay_once(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(seconds=2)
        with self.uow.db.transaction() as session:
            pending = self.uow.tables.unpublished_older_than(session, cutoff)
        if pending:
            await self.uow.publish_committed(pending)
            log.info("outbox relay published %d events", len(pending))

    async def outbox_relay(self) -> None:
        """Publish outbox rows whose inline publish failed (Redis was down, process died after commit)."""
        await self._every(1.0, "outbox relay", self._relay_once, first=False)

    async def prune_outbox_once(self) -> int:
        cutoff = datetime.now(UTC) - timedelta(seconds=self.settings.outbox_retention_s)
        pruned = 0
        while True:  # short transactions, so the answer path's outbox commits never wait long behind one
            with self.uow.db.transaction() as session:
                batch = self.uow.tables.prune_published(session, cutoff)
            pruned += batch
            if batch == 0 or self.stopping.is_set():
                break
            await asyncio.sleep(0)
        if pruned:
            log.info("outbox: deleted %d rows published before %s", pruned, cutoff.isoformat())
        return pruned

    async def outbox_pruner(self) -> None:
        """Delete published outbox rows past their retention (TUNEGATE_OUTBOX_RETENTION_S)."""
        await self._every(OUTBOX_PRUNE_INTERVAL_S, "outbox pruner", self.prune_outbox_once, first=True)

    # ------------------------------------------------------------------ liveness

    async def beat(self) -> None:
        stats = self.dispatcher.stats
        await self.redis.set(
            heartbeat_key(self.service, self.consumer),
            json.dumps(
                {
                    "service": self.service,
                    "consumer": self.consumer,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started_at": self.started_at,
                    "processed": stats.processed,
                    "failed": stats.failed,
                    "dead_lettered": stats.dead_lettered,
                    "rejected": stats.rejected,
                    "in_flight": len(self.dispatcher.owned()),
                    "at": time.time(),
                }
            ),
            ex=HEARTBEAT_TTL_S,
        )

    async def heartbeat(self) -> None:
        await self._every(HEARTBEAT_INTERVAL_S, "heartbeat", self.beat, first=True)
