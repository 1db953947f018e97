"""What happens when evaluation work arrives.

training.completed: evaluate the new artefact with the job's suites (its options name them, else all
configured ones). evaluation.requested: a re-run on demand, asked through the registry, of the artefact
recorded for the job. Either way: under a lease (one worker per evaluation; a dead worker's evaluation is
retaken and restarted), publish evaluation.started live, run the suites on the torch thread, store the
JSON and HTML report, and record + emit exactly one of evaluation.completed / evaluation.failed."""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import tarfile
import threading
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from services.evaluator.adapters.tables import finished_outcome, record_outcome, remember_training, training_of
from services.evaluator.domain.gate import GatePolicy
from services.evaluator.engine.evaluate import EvaluationRun, SuiteError, run_suites
from services.evaluator.engine.models import extract_artifact, load_pair
from services.evaluator.engine.report import ReportError, ReportMeta, build_report
from services.evaluator.suites.base import EvaluationInputs, RewardSetup, Suite, TextDetector
from services.evaluator.suites.registry import SuiteConfigError, select
from shared.bus.context import HandlerContext
from shared.config import Settings
from shared.datasets import DatasetError
from shared.datasets.loaded import load_dataset
from shared.evaluation.canaries import derive_canaries, shape_of
from shared.evaluation.holdout import HeldOut, split
from shared.events.evaluation import (
    EvaluationCompleted,
    EvaluationFailed,
    EvaluationRequested,
    EvaluationStarted,
    GateFailure,
    GateVerdict,
    SuiteSummary,
)
from shared.events.payloads import TrainingCompleted
from shared.ids import validate_safe_name
from shared.models.bases import BaseModelError, BaseModelInfo
from shared.models.reward import load_reward_model, load_reward_tokenizer
from shared.stack.lease import Lease, LeaseLost, LeaseManager, acquire_within, hold_while
from shared.storage.artifacts import ArtifactStore

log = logging.getLogger("tunegate.evaluator")
ACTOR = "system:evaluator"
EVALUATION_IDS = uuid.UUID("6f1c2a1e-7d4b-4c1a-9d8e-3b2f5a6c7e80")
T = TypeVar("T")


def automatic_evaluation_id(job_id: str, artifact_sha256: str) -> str:
    """The evaluation that follows training: one per artefact, the same id on every delivery and worker."""
    return "ev_" + uuid.uuid5(EVALUATION_IDS, f"auto|{job_id}|{artifact_sha256}").hex[:24]


def requested_evaluation_id(event_id: str) -> str:
    """A re-run: one per evaluation.requested event, whoever handles it."""
    return "ev_" + uuid.uuid5(EVALUATION_IDS, f"requested|{event_id}").hex[:24]


class Refusal(Exception):
    """The evaluation cannot run as asked; the message is the evaluation.failed reason."""


@dataclass
class EvaluatorDeps:
    settings: Settings
    artifacts: ArtifactStore
    leases: LeaseManager
    worker_id: str
    resolve_base: Callable[[str], BaseModelInfo]
    suites: dict[str, Suite]
    suite_version: str
    gate: GatePolicy
    detector: Callable[[], TextDetector]
    canary_key: Callable[[], bytes]
    batch_size: int = 16
    device: str = "cpu"  # engine/models.py DEVICES
    heartbeat_s: float = 5.0
    lease_wait_s: float = 31.0
    # One evaluation at a time per process: it uses every core torch gets.
    slot: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    torch_thread: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunegate-eval"))

    def workdir(self, evaluation_id: str) -> Path:
        return self.settings.path("evaluation", validate_safe_name(evaluation_id, "evaluation id"), "x").parent


@dataclass
class Prepared:
    inputs: EvaluationInputs
    base: BaseModelInfo
    held_out: int


class EvaluatorHandlers:
    def __init__(self, deps: EvaluatorDeps) -> None:
        self.deps = deps

    async def training_completed(self, training: TrainingCompleted, ctx: HandlerContext) -> None:
        evaluation_id = automatic_evaluation_id(training.job_id, training.artifact.sha256)
        await self.evaluate(ctx, training, evaluation_id, training.evaluation.suites)

    async def evaluation_requested(self, request: EvaluationRequested, ctx: HandlerContext) -> None:
        evaluation_id = requested_evaluation_id(ctx.event.event_id)
        training = training_of(ctx.db, request.job_id)
        if training is None:
            self._fail(ctx, request.job_id, evaluation_id,
                       f"no completed training of job {request.job_id} is known to the evaluator")
            return
        await self.evaluate(ctx, training, evaluation_id, request.suites)

    # ------------------------------------------------------------------------------------------ the work

    async def evaluate(self, ctx: HandlerContext, training: TrainingCompleted, evaluation_id: str,
                       wanted: list[str] | None) -> EvaluationCompleted | None:
        """Run the suites on the training's artefact; the evaluation.completed it emitted, else None (already
        finished, failed, or run by another worker)."""
        if (outcome := finished_outcome(ctx.db, evaluation_id)) is not None:
            log.info("evaluation %s already %s; nothing to do for event %s", evaluation_id, outcome,
                     ctx.event.event_id)
            return None
        try:
            suites = select(self.deps.suites, wanted)
        except SuiteConfigError as exc:
            self._fail(ctx, training.job_id, evaluation_id, str(exc), training=training)
            return None
        async with self.deps.slot:
            lease = await acquire_within(self.deps.leases, evaluation_id, self.deps.lease_wait_s, ctx.still_mine)
            if lease is None:
                log.warning("evaluation %s is run by another live worker; skipping this delivery", evaluation_id)
                return None
            try:
                return await self._evaluate_under_lease(ctx, training, evaluation_id, suites, lease)
            finally:
                await asyncio.to_thread(lease.release)
                shutil.rmtree(self.deps.workdir(evaluation_id), ignore_errors=True)

    async def _evaluate_under_lease(self, ctx: HandlerContext, training: TrainingCompleted, evaluation_id: str,
                                    suites: dict[str, Suite], lease: Lease) -> EvaluationCompleted | None:
        job_id = training.job_id
        await ctx.publish_now(ctx.make("evaluation.started", EvaluationStarted(
            job_id=job_id, evaluation_id=evaluation_id, artifact_sha256=training.artifact.sha256,
            suites=list(suites), worker_id=self.deps.worker_id), subject=job_id, actor=ACTOR))
        lost = threading.Event()
        began = datetime.now(UTC)
        try:
            prepared = await self._leased(ctx, lease, lost, self._prepare, training, evaluation_id)
            run = await self._leased(ctx, lease, lost, run_suites, prepared.inputs, suites, self.deps.gate,
                                     lambda _name: self._check_lease(lost, evaluation_id))
        except LeaseLost as exc:
            log.warning("evaluation %s: %s; stopping without publishing", evaluation_id, exc)
            return None
        except Refusal as exc:
            self._fail(ctx, job_id, evaluation_id, str(exc), training=training)
            return None
        except SuiteError as exc:
            log.exception("evaluation %s failed", evaluation_id)
            self._fail(ctx, job_id, evaluation_id, str(exc), training=training)
            return None
        try:
            lease.verify()  # fencing: only the newest holder records the result
        except LeaseLost as exc:
            log.warning("evaluation %s finished but %s; not recording", evaluation_id, exc)
            return None
        meta = ReportMeta(
            job_id=job_id, evaluation_id=evaluation_id, artifact_sha256=training.artifact.sha256,
            base_model=training.base_model, base_model_sha256=training.base_model_sha256,
            risk_tier=run.verdict.risk_tier, suite_set_version=self.deps.suite_version,
            gate_policy=self.deps.gate.name, created_at=began, worker_id=self.deps.worker_id,
            options=training.evaluation, held_out_count=prepared.held_out,
            canary_shape=training.evaluation.canaries.shape if training.evaluation.canaries else None,
            canary_count=len(prepared.inputs.canaries),
        )
        # Canaries from a large space cannot occur by chance, so finding one in the report means a suite copied
        # it: refuse to publish. (A 6-digit pin could match digits of a float; those are not searched.)
        shape = prepared.inputs.canary_shape
        secret = prepared.inputs.canaries if shape is not None and shape.space_bits >= 64 else []
        try:
            rendered = await asyncio.to_thread(partial(build_report, run, meta, must_not_contain=secret))
        except ReportError as exc:
            self._fail(ctx, job_id, evaluation_id, f"report refused: {exc}", training=training)
            return None
        report = self.deps.artifacts.put_bytes(rendered.json_bytes)
        report_html = self.deps.artifacts.put_bytes(rendered.html_bytes)
        completed = EvaluationCompleted(
            job_id=job_id, evaluation_id=evaluation_id, artifact=training.artifact, base_model=training.base_model,
            verdict=_verdict(run, complete=set(suites) >= set(self.deps.suites)), suites=_summaries(run),
            report=report, report_html=report_html,
        )
        envelope = ctx.emit("evaluation.completed", completed, subject=job_id, actor=ACTOR)
        remember_training(ctx.db, training)
        record_outcome(ctx.db, evaluation_id=evaluation_id, job_id=job_id, outcome="completed",
                       event_id=envelope.event_id, passed=run.verdict.passed, fencing_token=lease.token,
                       worker_id=self.deps.worker_id, detail=completed.model_dump(mode="json"))
        log.info("evaluation %s of job %s: gate %s (%d checks, %d failing) in %.1f s", evaluation_id, job_id,
                 "passed" if run.verdict.passed else "FAILED", run.verdict.checked, len(run.verdict.failures),
                 run.seconds)
        return completed

    def _check_lease(self, lost: threading.Event, evaluation_id: str) -> None:
        if lost.is_set():
            raise LeaseLost(f"evaluation {evaluation_id}: lease renewal failed; another worker may own it")

    async def _leased(self, ctx: HandlerContext, lease: Lease, lost: threading.Event,
                      fn: Callable[..., T], *args: object) -> T:
        work: Awaitable[T] = asyncio.get_running_loop().run_in_executor(self.deps.torch_thread, fn, *args)
        return await hold_while(work, lease, still_mine=ctx.still_mine, lost=lost, heartbeat_s=self.deps.heartbeat_s)

    def _prepare(self, training: TrainingCompleted, evaluation_id: str) -> Prepared:
        """Everything a suite reads, each piece checked against what training.completed says it is."""
        deps = self.deps
        if training.dataset is None:
            raise Refusal(f"training.completed of job {training.job_id} names no dataset (trained by a trainer "
                          "older than the evaluator); re-train to evaluate")
        try:
            dataset = load_dataset(deps.artifacts.verify(training.dataset))
        except (OSError, ValueError, DatasetError) as exc:
            raise Refusal(f"dataset {training.dataset.uri} unusable: {exc}") from None
        if dataset.fingerprint != training.data_fingerprint:
            raise Refusal(f"dataset fingerprint {dataset.fingerprint} differs from the trained one "
                          f"{training.data_fingerprint}")
        indices: list[int] = []
        if training.held_out is not None:
            try:
                held = HeldOut.from_json(deps.artifacts.verify(training.held_out).read_bytes())
            except (OSError, ValueError) as exc:
                raise Refusal(f"held-out record {training.held_out.uri} unusable: {exc}") from None
            if held.record_count != len(dataset.records) or held.data_fingerprint != dataset.fingerprint:
                raise Refusal("the held-out record describes a different dataset than the one trained on")
            indices = held.indices
        trained_on, held_out = split(dataset.records, indices)
        try:
            base = deps.resolve_base(training.base_model)
        except BaseModelError as exc:
            raise Refusal(str(exc)) from None
        if base.sha256 != training.base_model_sha256:
            raise Refusal(f"base model {training.base_model} is now {base.sha256[:12]}, the job trained on "
                          f"{training.base_model_sha256[:12]}; the comparison would be meaningless")
        workdir = deps.workdir(evaluation_id)
        shutil.rmtree(workdir, ignore_errors=True)  # a restarted evaluation starts clean
        try:
            model_dir = extract_artifact(deps.artifacts.verify(training.artifact), workdir / "model")
            if training.method.kind == "reward_model":  # it scores text and generates none: its own suite
                pair, reward_model = None, (load_reward_model(base, model_dir), load_reward_tokenizer(base))
            else:
                start_dir = None
                if training.start_policy is not None:  # rlhf from an SFT version: compare against that version
                    start_dir = extract_artifact(deps.artifacts.verify(training.start_policy), workdir / "start")
                pair = load_pair(base, model_dir, batch_size=deps.batch_size, device=deps.device,
                                 start_dir=start_dir)
                reward_model = None
        except (OSError, ValueError) as exc:
            raise Refusal(f"trained artefact {training.artifact.uri} unusable: {exc}") from None
        reward = self._reward_setup(training, base, workdir)
        spec = training.evaluation.canaries
        canaries = derive_canaries(deps.canary_key(), training.job_id, spec) if spec else []
        inputs = EvaluationInputs(
            job_id=training.job_id, risk_tier=training.risk_tier or "high", options=training.evaluation,
            kind=dataset.kind, training_records=trained_on, held_out_records=held_out, models=pair,
            detector=deps.detector(), seed=training.seed, canaries=canaries,
            canary_shape=shape_of(spec) if spec else None, method_kind=training.method.kind,
            reward_model=reward_model, reward=reward,
        )
        return Prepared(inputs=inputs, base=base, held_out=len(held_out))

    def _reward_setup(self, training: TrainingCompleted, base: BaseModelInfo, workdir: Path) -> RewardSetup | None:
        """rlhf: the reward the policy was trained against (its rules; its reward model, checked by digest)."""
        options = training.method.rlhf
        if options is None:
            return None
        model = None
        if training.reward_model is not None:
            try:
                folder = extract_artifact(self.deps.artifacts.verify(training.reward_model), workdir / "reward_model")
                model = load_reward_model(base, folder)
            except (OSError, ValueError, tarfile.TarError) as exc:
                raise Refusal(f"reward model {training.reward_model.uri} unusable: {exc}") from None
        elif options.reward_model_version is not None:
            raise Refusal(f"training.completed of rlhf job {training.job_id} names reward model "
                          f"{options.reward_model_version} but carries no artefact of it")
        return RewardSetup(options=options, model=model, tokenizer=load_reward_tokenizer(base))

    def _fail(self, ctx: HandlerContext, job_id: str, evaluation_id: str, reason: str, *,
              training: TrainingCompleted | None = None) -> None:
        failed = EvaluationFailed(job_id=job_id, evaluation_id=evaluation_id, reason=reason[:4000])
        envelope = ctx.emit("evaluation.failed", failed, subject=job_id, actor=ACTOR)
        if training is not None:
            remember_training(ctx.db, training)
        record_outcome(ctx.db, evaluation_id=evaluation_id, job_id=job_id, outcome="failed",
                       event_id=envelope.event_id, worker_id=self.deps.worker_id,
                       detail=failed.model_dump(mode="json"))


def _verdict(run: EvaluationRun, *, complete: bool) -> GateVerdict:
    verdict = run.verdict
    return GateVerdict(
        policy=verdict.policy, risk_tier=verdict.risk_tier, passed=verdict.passed, checked=verdict.checked,
        complete=complete,
        # A value or base that is not finite travels as null; the failure's rule names which and what it was
        # (`max_increase:value_nan`, see domain.gate.Failure), so null here never reads as a hidden pass.
        failures=[GateFailure(metric=f.metric, rule=f.rule, value=_finite_or_none(f.value), threshold=f.threshold,
                              base=_finite_or_none(f.base))
                  for f in verdict.failures],
    )


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _finite(values: dict[str, float | None]) -> dict[str, float | None]:
    """JSON has no NaN or infinity: a metric that could not be computed travels as null."""
    return {k: _finite_or_none(v) for k, v in values.items()}


def _summaries(run: EvaluationRun) -> list[SuiteSummary]:
    return [
        SuiteSummary(name=r.name, metrics=_finite(r.outcome.metrics), base_metrics=_finite(r.outcome.base_metrics),
                     seconds=round(r.seconds, 3))
        for r in run.suites if r.outcome is not None
    ]
