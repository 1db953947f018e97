"""What happens when training events arrive.

training.requested (its hyperparameters already checked against the method by the payload type): refuse
unless the data is what was scanned and fits the method, then train (or resume) under a lease, publish
started/progress/checkpointed live, and record + emit exactly one of completed / failed / cancelled.
training.cancel.requested: raise the job's cancel flag; the training loop stops at its next step."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tarfile
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from services.evaluator.engine.models import extract_artifact
from services.trainer.adapters.tables import finished_outcome, record_outcome
from services.trainer.domain.progress import TrainingCancelledError, TrainingRejected
from services.trainer.engine.cleanup import discard_checkpoints, discard_failed_run
from services.trainer.engine.loop import run_training
from services.trainer.engine.packaging import store_checkpoint_manifest, store_directory
from services.trainer.engine.provenance import code_commit, library_versions, loss_curve_png
from services.trainer.engine.run import TrainingJob, TrainingOutcome
from shared.bus.context import HandlerContext
from shared.bus.outcomes import is_outage
from shared.config import Settings
from shared.datasets import DatasetError
from shared.datasets.loaded import LoadedDataset, load_dataset
from shared.datasets.reference import (
    DataAccess,
    DatasetMismatch,
    DatasetNotFound,
    DatasetRef,
    DatasetRefError,
    verify_scanned,
)
from shared.evaluation.holdout import HeldOut, choose_held_out, split
from shared.events.envelope import Envelope
from shared.events.payloads import (
    ArtifactRef,
    TrainingCancelled,
    TrainingCancelRequested,
    TrainingCheckpointed,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgress,
    TrainingRequested,
    TrainingStarted,
)
from shared.ids import validate_job_id
from shared.models.bases import BaseModelError, BaseModelInfo, architecture_of
from shared.stack.lease import Lease, LeaseLost, LeaseManager, acquire_within, hold_while
from shared.storage.artifacts import ArtifactStore
from shared.training.hyperparameters import HyperparameterError, check_data_fits

log = logging.getLogger("tunegate.trainer")
ACTOR = "system:trainer"
T = TypeVar("T")


REASON_CHARS = 1000  # of an unexpected exception's message in training.failed; the log keeps the traceback


class Refusal(Exception):
    """The job cannot be trained as requested; the message is the training.failed reason."""


class TrainingFailure(Exception):
    """Training itself raised (not the bus, the database, the lease or a cancel): the job fails with `reason`.
    The original exception is the __cause__, so the logged traceback shows where it came from."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)

    @classmethod
    def of(cls, exc: BaseException) -> TrainingFailure:
        if isinstance(exc, TrainingRejected):  # its message is the reason (diverged, no DP guarantee)
            return cls(_cut(str(exc)))
        return cls(describe("training error", exc))


def describe(what: str, exc: BaseException) -> str:
    """`what: ExceptionType: message`, cut to REASON_CHARS."""
    message = str(exc).strip()
    return _cut(f"{what}: {type(exc).__name__}: {message}" if message else f"{what}: {type(exc).__name__}")


def _cut(text: str) -> str:
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 1] + "…"


@dataclass
class TrainerDeps:
    settings: Settings
    artifacts: ArtifactStore
    leases: LeaseManager
    slot: asyncio.Semaphore
    worker_id: str
    resolve_base: Callable[[str], BaseModelInfo]
    heartbeat_s: float = 5.0
    lease_wait_s: float = 31.0
    cancel_poll_s: float = 0.25
    # Every torch computation runs on this one thread: OpenMP keeps a thread team per calling thread,
    # and two teams on the same cores cost 20-40% throughput (measured on 2 cores).
    torch_thread: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunegate-train"))

    def workdir(self, job_id: str) -> Path:
        return self.settings.path("training", validate_job_id(job_id), "x").parent

    def workdir_as_is(self, job_id: str) -> Path:
        """workdir's path, neither created nor tightened (that would follow a symlink in its place): for
        removing what a run left there."""
        return self.settings.path("training", validate_job_id(job_id))


class LiveHooks:
    """TrainingHooks for a job running in a worker thread: events go out through the handler's loop."""

    def __init__(self, deps: TrainerDeps, ctx: HandlerContext, loop: asyncio.AbstractEventLoop,
                 lease: Lease, job_id: str, lost: threading.Event, cancelled: threading.Event) -> None:
        self.deps, self.ctx, self.loop, self.lease, self.job_id = deps, ctx, loop, lease, job_id
        self.lost, self.cancelled = lost, cancelled
        self.last_step = 0
        self.publish_error: BaseException | None = None

    def _publish(self, event_type: str, payload: object) -> None:
        envelope = self.ctx.make(event_type, payload, subject=self.job_id, actor=ACTOR)  # type: ignore[arg-type]
        try:
            asyncio.run_coroutine_threadsafe(self.ctx.publish_now(envelope), self.loop).result(timeout=60)
        except BaseException as exc:
            # The bus failed, not the training: the handler lets this escape so the entry is retried (and the
            # run resumes from its last checkpoint) rather than failing the job.
            self.publish_error = exc
            raise

    def started(self, resumed_from_step: int, total_steps: int) -> None:
        self.last_step = resumed_from_step
        self._publish("training.started", TrainingStarted(
            job_id=self.job_id, worker_id=self.deps.worker_id, fencing_token=self.lease.token,
            resumed_from_step=resumed_from_step, total_steps=total_steps))

    def progress(self, progress: TrainingProgress) -> None:
        self.last_step = progress.step
        self._publish("training.progress", progress)

    def before_checkpoint(self, step: int) -> None:
        if self.lost.is_set():
            raise LeaseLost(f"job {self.job_id}: lease renewal failed before step {step}")
        self.lease.verify()

    def checkpointed(self, step: int, directory: Path) -> None:
        ref = store_checkpoint_manifest(self.deps.artifacts, self.job_id, step, directory)
        self._publish("training.checkpointed", TrainingCheckpointed(
            job_id=self.job_id, step=step, checkpoint=ref, fencing_token=self.lease.token))

    def cancel_requested(self) -> bool:
        if self.lost.is_set():
            raise LeaseLost(f"job {self.job_id}: lease renewal failed; another worker may own the job")
        # The event loop polls Redis for the flag; the training thread only reads an Event, so no network
        # round trip sits on the per-step path.
        return self.cancelled.is_set()


class TrainerHandlers:
    def __init__(self, deps: TrainerDeps) -> None:
        self.deps = deps

    # ------------------------------------------------------------------------------ training.requested

    async def training_requested(self, request: TrainingRequested, ctx: HandlerContext) -> None:
        job_id = request.job_id
        if (outcome := finished_outcome(ctx.db, job_id)) is not None:
            log.info("job %s already %s; nothing to do for event %s", job_id, outcome, ctx.event.event_id)
            return
        if (reason := self.deps.leases.cancel_reason(job_id)) is not None:
            self._finish(ctx, job_id, "cancelled", "training.cancelled",
                         TrainingCancelled(job_id=job_id, at_step=0, reason=reason))
            return
        async with self.deps.slot:
            lease = await acquire_within(self.deps.leases, job_id, self.deps.lease_wait_s, ctx.still_mine)
            if lease is None:
                log.warning("job %s is being trained by another live worker; skipping this delivery", job_id)
                return
            try:
                await self._train_under_lease(ctx, request, lease)
            finally:
                await asyncio.to_thread(lease.release)

    async def _train_under_lease(self, ctx: HandlerContext, request: TrainingRequested, lease: Lease) -> None:
        job_id = request.job_id
        params = request.hyperparameters
        lost, cancelled = threading.Event(), threading.Event()
        try:
            # Building `tiny` or converting a GGUF on first use can outlast the lease: keep renewing.
            preparing = self._on_torch_thread(self._prepare_job, request)
            dataset, base = await self._heartbeat(ctx, lease, lost, cancelled, preparing)
            reward_model_dir, policy_dir = await asyncio.to_thread(self._rlhf_versions, request)
        except Refusal as exc:
            await self._fail(ctx, lease, job_id, str(exc))
            return
        job = TrainingJob(job_id=job_id, base=base, method=request.method, params=params, seed=request.seed,
                          dataset=dataset, workdir=self.deps.workdir(job_id), reward_model_dir=reward_model_dir,
                          policy_dir=policy_dir)
        hooks = LiveHooks(self.deps, ctx, asyncio.get_running_loop(), lease, job_id, lost, cancelled)
        try:
            training = self._on_torch_thread(self._train, job, hooks)
            outcome: TrainingOutcome = await self._heartbeat(ctx, lease, lost, cancelled, training)
        except LeaseLost as exc:
            log.warning("job %s: %s; stopping without publishing", job_id, exc)
            return
        except TrainingCancelledError as exc:
            # Fenced like any outcome; a cancelled run's checkpoints stay (a resubmitted job resumes from them).
            if not await self._still_holds(lease, "was cancelled", "training.cancelled"):
                return
            reason = self.deps.leases.cancel_reason(job_id) or "cancelled"
            self._finish(ctx, job_id, "cancelled", "training.cancelled",
                         TrainingCancelled(job_id=job_id, at_step=exc.at_step, reason=reason))
            return
        except TrainingFailure as failure:
            # exc_info is the failure, chained to what training raised: the log has the original traceback.
            log.exception("job %s failed: %s", job_id, failure.reason)
            await self._fail(ctx, lease, job_id, failure.reason, step=hooks.last_step)
            return
        if not await self._still_holds(lease, "finished", "training.completed"):
            return
        completed = await asyncio.to_thread(self._package, request, base, outcome)
        self._finish(ctx, job_id, "completed", "training.completed", completed,
                     artifact_sha256=completed.artifact.sha256, token=lease.token)
        await asyncio.to_thread(discard_checkpoints, job.workdir, job_id)

    @staticmethod
    async def _still_holds(lease: Lease, finished: str, event_type: str) -> bool:
        """Fencing before a job's final event, whatever the outcome: only the newest holder of the lease may say
        how the job ended. A worker whose lease expired may find the job re-leased to another worker that is
        training it now; its own result (or failure) is stale, and the directory is the new holder's. False,
        with a warning saying what was not done, when the lease moved."""
        try:
            await asyncio.to_thread(lease.verify)
        except LeaseLost as exc:
            log.warning("job %s %s, but this worker no longer holds its lease (%s): not publishing %s and leaving "
                        "the job's directory to the current holder", lease.job_id, finished, exc, event_type)
            return False
        return True

    @staticmethod
    def _train(job: TrainingJob, hooks: LiveHooks) -> TrainingOutcome:
        """run_training, on the torch thread. Whatever training itself raises (a library's AttributeError on odd
        records, an accountant's ZeroDivisionError, a diverged run) becomes a TrainingFailure, which fails the
        job; a lost lease, a cancel, an unreachable Redis or database, or a failed publish escapes as it is, so
        the handler stops without recording or the bus retries the entry."""
        try:
            return run_training(job, hooks)
        except (LeaseLost, TrainingCancelledError):
            raise
        except Exception as exc:
            if is_outage(exc) or hooks.publish_error is not None:
                raise
            raise TrainingFailure.of(exc) from exc

    def _prepare_job(self, request: TrainingRequested) -> tuple[LoadedDataset, BaseModelInfo]:
        """_prepare, with any unexpected error (not an outage) turned into a Refusal: a job whose data or base
        cannot be prepared fails with the reason instead of being redelivered until it is dead-lettered."""
        try:
            return self._prepare(request)
        except Refusal:
            raise
        except Exception as exc:
            if is_outage(exc):
                raise
            log.exception("job %s: preparing the run failed", request.job_id)
            raise Refusal(describe("preparing the run failed", exc)) from exc

    def _on_torch_thread(self, fn: Callable[..., T], *args: object) -> Awaitable[T]:
        return asyncio.get_running_loop().run_in_executor(self.deps.torch_thread, fn, *args)

    async def _heartbeat(self, ctx: HandlerContext, lease: Lease, lost: threading.Event,
                         cancelled: threading.Event, work: Awaitable[T]) -> T:
        """Await thread work under the lease (shared.stack.lease.hold_while), also watching the cancel flag:
        a cancel request sets `cancelled` and the training loop stops at its next step."""
        async def watch_cancel() -> None:
            if not cancelled.is_set() and await asyncio.to_thread(self.deps.leases.cancel_reason, lease.job_id):
                cancelled.set()

        return await hold_while(work, lease, still_mine=ctx.still_mine, lost=lost, heartbeat_s=self.deps.heartbeat_s,
                                poll_s=self.deps.cancel_poll_s, on_poll=watch_cancel)

    def _prepare(self, request: TrainingRequested) -> tuple[LoadedDataset, BaseModelInfo]:
        """Refuse anything but the exact bytes the scanner passed, hold out the evaluation split, then resolve
        the base model. The returned dataset holds only the records to train on."""
        if request.scan_verdict not in ("clean", "redacted"):
            raise Refusal(f"dataset scan verdict is {request.scan_verdict!r}; only clean or redacted data trains")
        try:
            path = verify_scanned(DatasetRef.parse(request.dataset.uri), request.dataset.sha256,
                                  DataAccess.from_settings(self.deps.settings, self.deps.artifacts))
        except DatasetMismatch as exc:
            raise Refusal(f"dataset bytes changed since the scan: {exc}") from None
        except DatasetNotFound as exc:
            raise Refusal(f"dataset not found: {exc}") from None
        except DatasetRefError as exc:
            raise Refusal(f"dataset not usable: {exc}") from None
        try:
            dataset = load_dataset(path)
        except DatasetError as exc:
            raise Refusal(f"dataset {request.dataset.uri} unreadable: {exc}") from None
        if dataset.fingerprint != request.fingerprint:
            raise Refusal(f"dataset fingerprint mismatch: the scanned fingerprint is {request.fingerprint}, "
                          f"the records read from {request.dataset.uri} give {dataset.fingerprint}")
        held_out = choose_held_out(len(dataset.records), request.evaluation.holdout_fraction, request.seed)
        training_records, _ = split(dataset.records, held_out)
        try:
            check_data_fits(request.method, request.hyperparameters, dataset.kind, len(training_records))
        except HyperparameterError as exc:
            raise Refusal(str(exc)) from None
        dataset = LoadedDataset(kind=dataset.kind, records=training_records, fingerprint=dataset.fingerprint,
                                held_out=tuple(held_out), total_records=len(dataset.records))
        try:
            base = self.deps.resolve_base(request.base_model)
        except BaseModelError as exc:
            raise Refusal(str(exc)) from None
        return dataset, base

    def _rlhf_versions(self, request: TrainingRequested) -> tuple[Path | None, Path | None]:
        """rlhf: the reward-model version and the starting SFT version, each unpacked beside the run."""
        options = request.method.rlhf
        if options is None:
            return None, None
        return (self._unpack(request, "reward_model", options.reward_model_version, request.reward_model),
                self._unpack(request, "policy", options.policy_version, request.policy))

    def _unpack(self, request: TrainingRequested, field: str, version: str | None,
                artifact: ArtifactRef | None) -> Path | None:
        """A version an rlhf job names (method.rlhf.<field>_version): its artefact, as the registry resolved it
        at approval, checked against its digest and unpacked beside the run."""
        if version is None:
            return None
        if artifact is None:
            raise Refusal(f"method.rlhf.{field}_version {version}: training.requested carries no "
                          f"{field.replace('_', '-')} artefact (the registry resolves it at approval)")
        target = self.deps.workdir(request.job_id) / field
        shutil.rmtree(target, ignore_errors=True)
        try:
            return extract_artifact(self.deps.artifacts.verify(artifact), target)
        except (OSError, ValueError, tarfile.TarError) as exc:
            raise Refusal(f"{field.replace('_', ' ')} {version} ({artifact.uri}) unusable: {exc}") from None

    def _package(self, request: TrainingRequested, base: BaseModelInfo, outcome: TrainingOutcome) -> TrainingCompleted:
        artifact = store_directory(self.deps.artifacts, outcome.model_dir)
        curve = self.deps.artifacts.put_bytes(
            loss_curve_png(outcome.loss_history, f"{request.job_id} ({request.method.kind}, "
                                                 f"{request.method.adapter})"))
        held_out = self.deps.artifacts.put_bytes(HeldOut(
            job_id=request.job_id, record_count=outcome.total_records, data_fingerprint=request.fingerprint,
            seed=request.seed, fraction=request.evaluation.holdout_fraction, indices=list(outcome.held_out),
        ).to_json())
        hyper = request.hyperparameters.resolved()
        hyper["total_steps"] = request.hyperparameters.total_steps(int(outcome.metrics["records"]),
                                                                   request.method.samples_per_record)
        return TrainingCompleted(
            job_id=request.job_id, artifact=artifact, base_model=request.base_model,
            base_model_sha256=base.sha256, base_architecture=architecture_of(base.path), method=request.method,
            hyperparameters=hyper, seed=request.seed,
            data_fingerprint=request.fingerprint, metrics=outcome.metrics, loss_curve=curve,
            library_versions=library_versions(), code_commit=code_commit(), epsilon=outcome.epsilon,
            delta=outcome.delta, dataset=request.dataset, held_out=held_out, risk_tier=request.risk_tier,
            evaluation=request.evaluation, reward_model=request.reward_model, start_policy=request.policy,
        )

    async def _fail(self, ctx: HandlerContext, lease: Lease, job_id: str, reason: str,
                    step: int | None = None) -> None:
        """training.failed, if this worker still holds the lease; the failed run's weights are removed first,
        right after the lease check, so the window in which the lease could move before the deletion is as
        short as it can be (a failed deletion is logged, and the job still fails)."""
        if not await self._still_holds(lease, f"failed ({reason})", "training.failed"):
            return
        await asyncio.to_thread(discard_failed_run, self.deps.workdir_as_is(job_id), job_id)
        self._finish(ctx, job_id, "failed", "training.failed", TrainingFailed(job_id=job_id, reason=reason,
                                                                             step=step))

    def _finish(self, ctx: HandlerContext, job_id: str, outcome: str, event_type: str,
                payload: TrainingCompleted | TrainingFailed | TrainingCancelled, *,
                artifact_sha256: str | None = None, token: int | None = None) -> Envelope:
        envelope = ctx.emit(event_type, payload, subject=job_id, actor=ACTOR)
        record_outcome(ctx.db, job_id=job_id, outcome=outcome, event_id=envelope.event_id,
                       detail=payload.model_dump(mode="json"), artifact_sha256=artifact_sha256,
                       fencing_token=token, worker_id=self.deps.worker_id)
        return envelope

    # ------------------------------------------------------------------------------ training.cancel.requested

    async def cancel_requested(self, request: TrainingCancelRequested, ctx: HandlerContext) -> None:
        await asyncio.to_thread(self.deps.leases.request_cancel, request.job_id, request.reason or "cancelled")
