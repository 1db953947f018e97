"""Wires the trainer: Redis lease manager, artefact store, base-model resolver, one training slot."""

from __future__ import annotations

import asyncio
from functools import partial

import redis

from services.trainer.adapters.tables import metadata
from services.trainer.config import TrainerSettings
from services.trainer.handlers import TrainerDeps, TrainerHandlers
from shared.bus.definition import ServiceDefinition
from shared.config import Settings
from shared.events.payloads import TrainingCancelRequested, TrainingRequested
from shared.models.bases import configure_offline, resolve_base
from shared.roster import service
from shared.stack.lease import LeaseManager, check_heartbeat, worker_identity
from shared.storage.artifacts import ArtifactStore

NAME = "trainer"


def build_deps(settings: Settings, client: redis.Redis, *, worker_id: str | None = None,
               lease_ttl_ms: int | None = None, heartbeat_s: float | None = None) -> TrainerDeps:
    own = TrainerSettings()
    worker_id = worker_id or own.worker_id or worker_identity()
    lease_ttl_ms = lease_ttl_ms or own.lease_ttl_ms
    heartbeat_s = heartbeat_s or own.heartbeat_s
    check_heartbeat("TUNEGATE_TRAINER_HEARTBEAT_S", heartbeat_s, lease_ttl_ms)
    return TrainerDeps(
        settings=settings,
        artifacts=ArtifactStore(settings.home_dir / "artifacts"),
        leases=LeaseManager(client, worker_id, ttl_ms=lease_ttl_ms, namespace=service(NAME).lease_namespace),
        # One job trains per process (a job uses every core it gets); control events still flow meanwhile.
        slot=asyncio.Semaphore(1),
        worker_id=worker_id,
        resolve_base=partial(resolve_base, settings=settings),
        heartbeat_s=heartbeat_s,
        lease_wait_s=lease_ttl_ms / 1000 + 1,
    )


def build(settings: Settings) -> ServiceDefinition:
    configure_offline()
    client = redis.Redis.from_url(settings.resolved_redis_url(NAME))
    deps = build_deps(settings, client)
    handlers = TrainerHandlers(deps)
    return ServiceDefinition(
        name=NAME,
        handlers={
            TrainingRequested: handlers.training_requested,
            TrainingCancelRequested: handlers.cancel_requested,
        },
        metadata=[metadata],
        # 2: a cancel is handled while a job trains. Deliveries waiting for the slot are not kept alive,
        # so the reclaimer hands them to an idle worker instead of this one hoarding the queue.
        concurrency=2,
        on_stop=[client.close, lambda: deps.torch_thread.shutdown(wait=False, cancel_futures=True)],
    )
