"""What happens when an event reaches the registry. One handler per event type; each turns the event
into RegistryCore calls on the handler's transaction (ctx.db) and queues the resulting events (ctx.emit).

Events about jobs this registry never saw are logged and skipped (another deployment's traffic or a test
publishing directly). Events that would move a known job through an invalid transition raise
InvalidTransition, naming the current state, so the bus dead-letters them with that reason."""

from __future__ import annotations

import logging
from pathlib import Path

from services.registry.adapters import repository
from services.registry.adapters.tables import JobRow
from services.registry.domain.states import JobState
from services.registry.workflow import RegistryCore
from shared.bus.context import HandlerContext
from shared.bus.definition import TypedHandler
from shared.events.payloads import (
    DatasetScanFailed,
    DatasetScanned,
    JobRequested,
    Payload,
    TrainingCancelled,
    TrainingCompleted,
    TrainingFailed,
)

log = logging.getLogger("tunegate.registry")


def _base_is_directory(base_model: str) -> bool:
    return Path(base_model).expanduser().is_dir()


def _known_job(ctx: HandlerContext, job_id: str) -> JobRow | None:
    job = repository.get_job(ctx.db, job_id, with_history=True)
    if job is None:
        log.warning("%s for unknown job %s (event %s): skipped", ctx.event.type, job_id, ctx.event.event_id)
    return job


def build_handlers(core: RegistryCore) -> dict[type[Payload], TypedHandler]:
    async def on_job_requested(data: JobRequested, ctx: HandlerContext) -> None:
        core.intake(
            ctx.db,
            ctx,
            job_id=data.job_id,
            spec=data.spec,
            requested_by=ctx.event.actor,
            base_is_directory=_base_is_directory(data.spec.base_model),
            cause_event_id=ctx.event.event_id,
        )

    async def on_dataset_scanned(data: DatasetScanned, ctx: HandlerContext) -> None:
        job = _known_job(ctx, data.job_id)
        if job is not None:
            core.scan_completed(ctx.db, ctx, job, data, cause_event_id=ctx.event.event_id)

    async def on_dataset_scan_failed(data: DatasetScanFailed, ctx: HandlerContext) -> None:
        job = _known_job(ctx, data.job_id)
        if job is not None:
            core.scan_failed(ctx.db, ctx, job, data, cause_event_id=ctx.event.event_id)

    def finish_training(
        ctx: HandlerContext, job_id: str, outcome: JobState, reason: str, result: dict[str, object] | None = None
    ) -> None:
        job = _known_job(ctx, job_id)
        if job is not None:
            core.training_finished(
                ctx.db, ctx, job, outcome, reason=reason, result=result, cause_event_id=ctx.event.event_id
            )

    async def on_training_completed(data: TrainingCompleted, ctx: HandlerContext) -> None:
        result = {
            "artifact": data.artifact.model_dump(mode="json"),
            "metrics": data.metrics,
            "data_fingerprint": data.data_fingerprint,
            "seed": data.seed,
            "base_model_sha256": data.base_model_sha256,
        }
        reason = f"training completed: adapter {data.artifact.sha256[:12]}"
        finish_training(ctx, data.job_id, JobState.TRAINED, reason, result)

    async def on_training_failed(data: TrainingFailed, ctx: HandlerContext) -> None:
        where = f" at step {data.step}" if data.step is not None else ""
        finish_training(ctx, data.job_id, JobState.FAILED, f"training failed{where}: {data.reason}")

    async def on_training_cancelled(data: TrainingCancelled, ctx: HandlerContext) -> None:
        reason = f"training cancelled at step {data.at_step}" + (f": {data.reason}" if data.reason else "")
        finish_training(ctx, data.job_id, JobState.CANCELLED, reason)

    return {
        JobRequested: on_job_requested,
        DatasetScanned: on_dataset_scanned,
        DatasetScanFailed: on_dataset_scan_failed,
        TrainingCompleted: on_training_completed,
        TrainingFailed: on_training_failed,
        TrainingCancelled: on_training_cancelled,
    }
