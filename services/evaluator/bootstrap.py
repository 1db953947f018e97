"""Wires the evaluator: suites and gate from YAML, Redis leases, the artefact store, base-model resolver,
the scanner's detection engine (built on first use), one evaluation slot."""

from __future__ import annotations

import logging
from functools import cache, partial

import redis

from services.evaluator.adapters.detection import scanner_detector
from services.evaluator.adapters.tables import metadata
from services.evaluator.domain.drift import SlidingWindows
from services.evaluator.handlers import EvaluatorDeps, EvaluatorHandlers
from services.evaluator.monitoring import MonitoringHandlers
from services.evaluator.scheduler import Scheduler, schedule_loop
from services.evaluator.settings import EvaluatorSettings
from services.evaluator.suites.registry import (
    DEFAULT_GATE,
    DEFAULT_SUITES,
    load_gate,
    load_monitoring,
    load_suites,
)
from shared.bus.definition import ServiceDefinition
from shared.config import Settings
from shared.evaluation.canaries import canary_key
from shared.events.evaluation import EvaluationRequested
from shared.events.inference import InferenceBlocked, InferenceCompleted
from shared.events.model_versions import ModelDeployed, ModelRetired
from shared.events.monitoring import EvaluationScheduled
from shared.events.payloads import TrainingCompleted
from shared.models.bases import configure_offline, resolve_base
from shared.roster import service
from shared.stack.lease import LeaseManager, check_heartbeat, worker_identity
from shared.storage.artifacts import ArtifactStore

NAME = "evaluator"
log = logging.getLogger("tunegate.evaluator")


def build_deps(settings: Settings, client: redis.Redis, *, own: EvaluatorSettings | None = None) -> EvaluatorDeps:
    own = own or EvaluatorSettings()
    check_heartbeat("TUNEGATE_EVALUATOR_HEARTBEAT_S", own.heartbeat_s, own.lease_ttl_ms)
    version, suites = load_suites(own.suites_file or DEFAULT_SUITES)
    worker_id = own.worker_id or worker_identity()
    return EvaluatorDeps(
        settings=settings,
        artifacts=ArtifactStore(settings.home_dir / "artifacts"),
        leases=LeaseManager(client, worker_id, ttl_ms=own.lease_ttl_ms, namespace=service(NAME).lease_namespace),
        worker_id=worker_id,
        resolve_base=partial(resolve_base, settings=settings),
        suites=suites,
        suite_version=version,
        gate=load_gate(own.gate_file or DEFAULT_GATE),
        detector=cache(partial(scanner_detector, ner=own.ner)),
        canary_key=partial(canary_key, settings),
        batch_size=own.batch_size,
        device=own.device,
        heartbeat_s=own.heartbeat_s,
        lease_wait_s=own.lease_ttl_ms / 1000 + 1,
    )


def build(settings: Settings) -> ServiceDefinition:
    configure_offline()
    own = EvaluatorSettings()
    client = redis.Redis.from_url(settings.resolved_redis_url(NAME))
    deps = build_deps(settings, client, own=own)
    handlers = EvaluatorHandlers(deps)
    policy = load_monitoring(own.monitoring_file, deps.suites)
    monitoring = MonitoringHandlers(handlers, policy, SlidingWindows(policy.production.thresholds()))
    background, release = [], []
    if own.monitor_interval_s > 0 and not policy.scheduled.suites:
        log.warning("no scheduled monitoring suite is among the configured suites: nothing is re-evaluated on a "
                    "schedule (production drift is still watched)")
    elif own.monitor_interval_s > 0:
        scheduler = Scheduler(deps.leases, client, own.monitor_interval_s, list(policy.scheduled.suites))
        background.append(schedule_loop(scheduler))
        release.append(scheduler.release)  # a stopping leader hands over at once, not after its lease TTL
    return ServiceDefinition(
        name=NAME,
        handlers={
            TrainingCompleted: handlers.training_completed,
            EvaluationRequested: handlers.evaluation_requested,
            EvaluationScheduled: monitoring.evaluation_scheduled,
            ModelDeployed: monitoring.model_deployed,
            ModelRetired: monitoring.model_retired,
            InferenceCompleted: monitoring.inference_completed,
            InferenceBlocked: monitoring.inference_blocked,
        },
        metadata=[metadata],
        background=background,
        # Deliveries waiting for the slot are not kept alive, so the reclaimer hands them to an idle worker.
        # Gateway records wait for a running evaluation too: drift is a windowed signal, minutes late is fine.
        concurrency=1,
        on_stop=[*release, client.close, lambda: deps.torch_thread.shutdown(wait=False, cancel_futures=True)],
    )
