"""The recurring re-evaluation's clock, inside the evaluator (no cron outside the product): once per
interval, `evaluation.scheduled` for every deployed version.

Leader-safe across replicas: a replica publishes only while it holds the `monitor-scheduler` work lease
(shared/stack/lease.py, renewed every tick, fenced before publishing), and the time of the last round is kept
in Redis, so a new leader (after a crash or a restart) continues the cadence instead of starting a round at
once. The rounds' events commit through the outbox in one transaction."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import redis

from services.evaluator.adapters.tables import deployed_versions
from services.evaluator.handlers import ACTOR
from shared.events.monitoring import EvaluationScheduled
from shared.stack.lease import Lease, LeaseLost, LeaseManager

if TYPE_CHECKING:
    from shared.bus.lifecycle import ServiceRuntime

log = logging.getLogger("tunegate.evaluator.scheduler")
LEADER_KEY = "monitor-scheduler"


@dataclass
class Scheduler:
    leases: LeaseManager
    client: redis.Redis
    interval_s: float
    suites: list[str]
    lease: Lease | None = None

    @property
    def round_key(self) -> str:
        return f"tunegate:{self.leases.namespace}:{LEADER_KEY}:last-round"

    @property
    def tick_s(self) -> float:
        """Renewals well within the lease TTL, and no coarser than the interval."""
        return min(self.interval_s, self.leases.ttl_ms / 1000 / 3)

    def leader(self) -> Lease | None:
        if self.lease is not None and self.lease.renew():
            return self.lease
        self.lease = self.leases.try_acquire(LEADER_KEY)
        return self.lease

    def due(self, now: float) -> bool:
        last = self.client.get(self.round_key)
        return last is None or now - float(last) >= self.interval_s

    async def tick(self, runtime: ServiceRuntime, now: Callable[[], float] = time.time) -> list[str]:
        """One look: the versions this replica scheduled (none unless it leads and a round is due)."""
        lease = await asyncio.to_thread(self.leader)
        started = now()
        if lease is None or not await asyncio.to_thread(self.due, started):
            return []
        try:
            await asyncio.to_thread(lease.verify)
        except LeaseLost as exc:
            log.warning("scheduler: %s; not scheduling", exc)
            self.lease = None
            return []
        round_at = datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")
        async with runtime.transaction(actor=ACTOR) as ctx:
            versions = deployed_versions(ctx.db)
            for version_id, artifact_sha256 in versions.items():
                ctx.emit("evaluation.scheduled", EvaluationScheduled(
                    version_id=version_id, artifact_sha256=artifact_sha256, suites=self.suites, round=round_at),
                    subject=version_id, actor=ACTOR)
        await asyncio.to_thread(self.client.set, self.round_key, repr(started))
        if versions:
            log.info("round %s: evaluation scheduled for %s", round_at, ", ".join(versions))
        return list(versions)

    def release(self) -> None:
        if self.lease is not None:
            self.lease.release()
            self.lease = None


def schedule_loop(scheduler: Scheduler) -> Callable[[ServiceRuntime], Awaitable[None]]:
    async def run(runtime: ServiceRuntime) -> None:
        while True:
            try:
                await scheduler.tick(runtime)
            except (redis.RedisError, OSError) as exc:  # Redis away: the next tick tries again
                log.warning("scheduler tick failed: %s", exc)
            except Exception:  # a failed round must not end the clock; the next tick retries
                log.exception("scheduler tick failed")
            await asyncio.sleep(scheduler.tick_s)

    return run
