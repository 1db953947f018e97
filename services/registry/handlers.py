"""What happens when an event reaches the registry: load the aggregate, call one method, commit (the
recorded events go to the outbox in the same transaction).

Events about jobs this registry never saw are logged and skipped (another deployment's traffic or a test
publishing directly). Events that would move a known job through an invalid transition raise
InvalidTransition, naming the current state, so the bus dead-letters them with that reason. A
`job.requested` whose signer is not an authorised principal raises SubmissionRefused (dead-lettered with
the reason); one reusing a job id is refused at once with a `job.rejected` (stage `submission`) that leaves
the existing job untouched.

`training.progress` is kept as a point of the job's loss curve (adapters/training_progress.py) for the
console's live chart; it changes no job and records no event.

An `evaluation.completed` with a verdict over every configured suite also registers a model version
(`model.registered`, model_registration.py) in the same transaction.

Evaluation events are idempotent on their evaluation id: a redelivered `evaluation.started`, `.completed`
or `.failed`, or a start that arrives after the outcome, is logged and changes nothing."""

from __future__ import annotations

import logging
from pathlib import Path

from services.registry.adapters import model_repository, outbox, repository
from services.registry.adapters.signatures import verified_submitter
from services.registry.adapters.training_progress import add_point
from services.registry.domain import events
from services.registry.domain.errors import SubmissionRefused
from services.registry.domain.evaluation import EvaluationResult
from services.registry.domain.governance import Governance
from services.registry.domain.job import Job, ScanResult
from services.registry.domain.states import JobState
from services.registry.domain.training_progress import ProgressPoint
from services.registry.erasure.service import note_shredded
from services.registry.model_registration import register_version
from services.registry.monitoring_handlers import build_monitoring_handlers
from shared.bus.context import HandlerContext
from shared.bus.definition import TypedHandler
from shared.events.erasure import ErasureShredded
from shared.events.evaluation import EvaluationCompleted, EvaluationFailed, EvaluationStarted
from shared.events.payloads import (
    DatasetScanFailed,
    DatasetScanned,
    JobRequested,
    Payload,
    TrainingCancelled,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgress,
)
from shared.storage.artifacts import ArtifactStore

log = logging.getLogger("tunegate.registry")


def _base_is_directory(base_model: str) -> bool:
    return Path(base_model).expanduser().is_dir()


def _known_job(ctx: HandlerContext, job_id: str) -> Job | None:
    job = repository.load_job(ctx.db, job_id)
    if job is None:
        log.warning("%s for unknown job %s (event %s): skipped", ctx.event.type, job_id, ctx.event.event_id)
    return job


def scan_result(data: DatasetScanned) -> ScanResult:
    summary = {
        "verdict": data.verdict,
        "record_count": data.record_count,
        "totals": data.totals,
        "classification": data.classification,
        "legal_basis": data.legal_basis,
        "blocking_reasons": data.blocking_reasons,
        "fingerprint": data.fingerprint,
        "source": data.source.model_dump(mode="json"),
        "dataset": data.dataset.model_dump(mode="json"),
        "report": data.report.model_dump(mode="json"),
        # Which detectors ran (None from a scanner that did not say: treated as a scan without NER).
        "detectors": data.detectors.model_dump(mode="json") if data.detectors is not None else None,
        # Where an erasure request finds the subject's records (services/registry/erasure/lineage.py).
        "subject_index": data.subject_index.model_dump(mode="json") if data.subject_index is not None else None,
    }
    return ScanResult(
        verdict=data.verdict,
        source_sha256=data.source.sha256,
        dataset=data.dataset.model_dump(mode="json"),
        fingerprint=data.fingerprint,
        blocking_reasons=list(data.blocking_reasons),
        summary=summary,
    )


def evaluation_result(data: EvaluationCompleted) -> EvaluationResult:
    return EvaluationResult(
        artifact_sha256=data.artifact.sha256,
        verdict=data.verdict.model_dump(mode="json"),
        suites=[suite.model_dump(mode="json") for suite in data.suites],
        report=data.report.model_dump(mode="json"),
        report_html=data.report_html.model_dump(mode="json"),
    )


def build_handlers(governance: Governance, artifacts: ArtifactStore) -> dict[type[Payload], TypedHandler]:
    async def on_job_requested(data: JobRequested, ctx: HandlerContext) -> None:
        try:
            requester = verified_submitter(ctx.db, ctx.event, spec_requester=data.spec.requester)
        except SubmissionRefused as refused:
            # A signed request by a known principal that may not submit (wrong role, a retired key): a
            # decision, recorded as such, not a failure to retry.
            log.warning("%s", refused)
            rejection = events.JobRejected(
                subject=data.job_id, actor=ctx.default_actor, stage="submission", reasons=[str(refused)]
            )
            outbox.emit(ctx, [rejection])
            return
        if repository.job_exists(ctx.db, data.job_id):
            reason = (
                f"job id {data.job_id} is already registered; request {ctx.event.event_id} was not recorded and the "
                "existing job is unchanged (submit again with a new job id)"
            )
            log.warning(reason)
            refusal = events.JobRejected(subject=data.job_id, actor=requester, stage="submission", reasons=[reason])
            outbox.emit(ctx, [refusal])
            return
        rlhf = model_repository.rlhf_versions(ctx.db, data.spec)
        decision = governance.intake(data.spec, base_is_directory=_base_is_directory(data.spec.base_model),
                                     rlhf=rlhf)
        job = Job.request(
            job_id=data.job_id,
            spec=data.spec,
            requester=requester,
            intake=decision,
            now=governance.now(),
            traceparent=ctx.trace,
        )
        outbox.commit_job(ctx, job)

    async def on_dataset_scanned(data: DatasetScanned, ctx: HandlerContext) -> None:
        job = _known_job(ctx, data.job_id)
        if job is None:
            return
        if not job.record_scan(scan_result(data), now=governance.now(), approval_ttl=governance.approval_ttl):
            log.info("scan result for cancelled job %s ignored", data.job_id)
        outbox.commit_job(ctx, job)

    async def on_dataset_scan_failed(data: DatasetScanFailed, ctx: HandlerContext) -> None:
        job = _known_job(ctx, data.job_id)
        if job is None:
            return
        if not job.scan_failed(list(data.reasons), now=governance.now()):
            log.info("scan failure for cancelled job %s ignored", data.job_id)
        outbox.commit_job(ctx, job)

    def finish(
        ctx: HandlerContext, job_id: str, outcome: JobState, reason: str, result: dict[str, object] | None
    ) -> None:
        job = _known_job(ctx, job_id)
        if job is not None:
            job.finish_training(outcome, reason=reason, now=governance.now(), result=result)
            outbox.commit_job(ctx, job)

    async def on_training_progress(data: TrainingProgress, ctx: HandlerContext) -> None:
        if _known_job(ctx, data.job_id) is None:
            return
        point = ProgressPoint(step=data.step, total_steps=data.total_steps, loss=data.loss, at=ctx.event.occurred_at,
                              eta_s=data.eta_s, tokens_per_s=data.tokens_per_s)
        if not add_point(ctx.db, data.job_id, ctx.event.event_id, point):
            log.info("training.progress %s of job %s already kept", ctx.event.event_id, data.job_id)

    async def on_training_completed(data: TrainingCompleted, ctx: HandlerContext) -> None:
        # Everything a model version's AIBOM states about how it was made, kept with the job.
        result = data.model_dump(
            mode="json",
            include={
                "artifact", "metrics", "data_fingerprint", "seed", "base_model_sha256", "base_architecture",
                "method", "hyperparameters", "library_versions", "code_commit", "epsilon", "delta", "dataset",
                "held_out", "loss_curve",
            },
        )
        finish(ctx, data.job_id, JobState.TRAINED, f"training completed: adapter {data.artifact.sha256[:12]}", result)

    async def on_training_failed(data: TrainingFailed, ctx: HandlerContext) -> None:
        where = f" at step {data.step}" if data.step is not None else ""
        finish(ctx, data.job_id, JobState.FAILED, f"training failed{where}: {data.reason}", None)

    async def on_training_cancelled(data: TrainingCancelled, ctx: HandlerContext) -> None:
        reason = f"training cancelled at step {data.at_step}" + (f": {data.reason}" if data.reason else "")
        finish(ctx, data.job_id, JobState.CANCELLED, reason, None)

    def evaluation_outcome(ctx: HandlerContext, job: Job, evaluation_id: str, recorded: bool) -> None:
        if recorded:
            outbox.commit_job(ctx, job)
        else:
            log.info(
                "%s for evaluation %s of job %s is already on record (event %s): nothing changes",
                ctx.event.type, evaluation_id, job.id, ctx.event.event_id,
            )

    async def on_evaluation_started(data: EvaluationStarted, ctx: HandlerContext) -> None:
        job = _known_job(ctx, data.job_id)
        if job is None:
            return
        recorded = job.evaluation_started(
            data.evaluation_id,
            artifact_sha256=data.artifact_sha256,
            suites=list(data.suites),
            cause_event_id=ctx.event.causation_id,
            now=governance.now(),
        )
        evaluation_outcome(ctx, job, data.evaluation_id, recorded)

    async def on_evaluation_completed(data: EvaluationCompleted, ctx: HandlerContext) -> None:
        job = _known_job(ctx, data.job_id)
        if job is None:
            return
        now = governance.now()
        recorded = job.evaluation_completed(
            data.evaluation_id, evaluation_result(data), cause_event_id=ctx.event.causation_id, now=now
        )
        evaluation_outcome(ctx, job, data.evaluation_id, recorded)
        # The verdict and the model version it registers are one act: both commit, or neither.
        version = register_version(ctx.db, job, data, artifacts=artifacts, now=now)
        if version is not None:
            outbox.commit_version(ctx, version)
            log.info("job %s registered model version %s", job.id, version.id)

    async def on_evaluation_failed(data: EvaluationFailed, ctx: HandlerContext) -> None:
        job = _known_job(ctx, data.job_id)
        if job is None:
            return
        recorded = job.evaluation_failed(
            data.evaluation_id, data.reason, cause_event_id=ctx.event.causation_id, now=governance.now()
        )
        evaluation_outcome(ctx, job, data.evaluation_id, recorded)

    async def on_erasure_shredded(data: ErasureShredded, ctx: HandlerContext) -> None:
        note_shredded(ctx, data.erasure_id, list(data.job_ids), list(data.deleted), governance.now())

    return {
        JobRequested: on_job_requested,
        DatasetScanned: on_dataset_scanned,
        DatasetScanFailed: on_dataset_scan_failed,
        TrainingProgress: on_training_progress,
        TrainingCompleted: on_training_completed,
        TrainingFailed: on_training_failed,
        TrainingCancelled: on_training_cancelled,
        EvaluationStarted: on_evaluation_started,
        EvaluationCompleted: on_evaluation_completed,
        EvaluationFailed: on_evaluation_failed,
        ErasureShredded: on_erasure_shredded,
        **build_monitoring_handlers(governance),
    }
