"""Recurring monitoring of deployed versions: what happens when deployment, scheduling and gateway events
reach the evaluator.

model.deployed / model.retired: which versions are deployed (and so scheduled and watched).
evaluation.scheduled: re-run the scheduled suites on the version's artefact (the same evaluation path as
`tunegate eval run`, so evaluation.started/.completed record it) and compare the result with the evaluation
that registered it: model.memorisation.detected for memorisation metrics past their bounds,
model.drift.detected for the others, in the same transaction as the evaluation's outcome.
inference.completed / inference.blocked: one observation per request in the version's sliding window; the
first full window is kept as the baseline, later windows are compared with it (domain/drift.py) and a
crossing publishes model.drift.detected (source `production`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC

from services.evaluator.adapters.tables import (
    drift_baseline,
    is_deployed,
    keep_drift_baseline,
    outcome_detail,
    record_deployment,
    record_retirement,
    training_by_artifact,
)
from services.evaluator.domain.drift import Finding, Observation, SlidingWindows, WindowSummary, compare
from services.evaluator.domain.monitoring_policy import MonitoringPolicy, Regression, flatten, regressions
from services.evaluator.handlers import ACTOR, EvaluatorHandlers, automatic_evaluation_id, requested_evaluation_id
from shared.bus.context import HandlerContext
from shared.events.inference import InferenceBlocked, InferenceCompleted
from shared.events.model_versions import ModelDeployed, ModelRetired
from shared.events.monitoring import (
    MAX_FINDINGS,
    DriftFinding,
    EvaluationScheduled,
    ModelDriftDetected,
    ModelMemorisationDetected,
    MonitoringWindow,
)

log = logging.getLogger("tunegate.evaluator.monitoring")
# Refusals at the access stage (unknown key, model out of scope, budgets) and the model stage (the engine or
# an upstream could not serve the request) say nothing about the model's behaviour.
BLOCKED_STAGES = {"prompt": "blocked", "response": "refused"}


def _wire(found: Finding | Regression) -> DriftFinding:
    problem = getattr(found, "problem", None)
    if problem is not None:  # no change to report: the metric was not a finite number (DriftFinding.problem)
        return DriftFinding(metric=found.metric, statistic=found.statistic, value=None, threshold=found.threshold,
                            baseline=found.baseline, current=None, problem=problem)
    return DriftFinding(metric=found.metric, statistic=found.statistic, value=found.value,
                        threshold=found.threshold, p_value=getattr(found, "p_value", None),
                        baseline=found.baseline, current=found.current)


def _capped(found: list[Regression], kind: str, version_id: str) -> list[DriftFinding]:
    """At most MAX_FINDINGS (the event's limit), the metrics that are not finite first: a suite whose every
    metric turned null must still publish, not fail the event's validation and report nothing."""
    ordered = sorted(found, key=lambda r: r.problem is None)
    for regression in ordered:
        log.warning("version %s, %s: %s", version_id, kind, regression.describe())
    if len(ordered) > MAX_FINDINGS:
        log.warning("version %s: %d %s findings, the first %d published", version_id, len(ordered), kind,
                    MAX_FINDINGS)
    return [_wire(r) for r in ordered[:MAX_FINDINGS]]


@dataclass
class MonitoringHandlers:
    evaluations: EvaluatorHandlers
    policy: MonitoringPolicy
    windows: SlidingWindows

    # ------------------------------------------------------------------ deployments

    async def model_deployed(self, event: ModelDeployed, ctx: HandlerContext) -> None:
        record_deployment(ctx.db, version_id=event.version_id, alias=event.alias,
                          artifact_sha256=event.artifact.sha256, replaces=event.replaces)

    async def model_retired(self, event: ModelRetired, ctx: HandlerContext) -> None:
        record_retirement(ctx.db, event.version_id)
        self.windows.forget(event.version_id)

    # ------------------------------------------------------------------ scheduled re-evaluation

    async def evaluation_scheduled(self, event: EvaluationScheduled, ctx: HandlerContext) -> None:
        if not is_deployed(ctx.db, event.version_id):
            log.info("version %s is no longer deployed; scheduled evaluation %s skipped", event.version_id,
                     ctx.event.event_id)
            return
        training = training_by_artifact(ctx.db, event.artifact_sha256)
        if training is None:
            log.warning("no training of artefact %s (version %s) is known to the evaluator; scheduled evaluation "
                        "skipped", event.artifact_sha256[:12], event.version_id)
            return
        completed = await self.evaluations.evaluate(ctx, training, requested_evaluation_id(ctx.event.event_id),
                                                    event.suites)
        if completed is None:
            return
        baseline_id = automatic_evaluation_id(training.job_id, training.artifact.sha256)
        baseline = outcome_detail(ctx.db, baseline_id)
        if baseline is None:
            log.warning("version %s: its registering evaluation %s is not on record here; nothing to compare",
                        event.version_id, baseline_id)
            return
        current = flatten(suite.model_dump(mode="json") for suite in completed.suites)
        found = regressions(flatten(baseline.get("suites") or []), current, self.policy.scheduled.thresholds)
        memorised = _capped([r for r in found if r.memorisation], "memorisation", event.version_id)
        drifted = _capped([r for r in found if not r.memorisation], "drift", event.version_id)
        if memorised:
            ctx.emit("model.memorisation.detected", ModelMemorisationDetected(
                version_id=event.version_id, evaluation_id=completed.evaluation_id,
                baseline_evaluation_id=baseline_id, findings=memorised), subject=event.version_id, actor=ACTOR)
        if drifted:
            ctx.emit("model.drift.detected", ModelDriftDetected(
                version_id=event.version_id, source="scheduled_evaluation", findings=drifted,
                evaluation_id=completed.evaluation_id, baseline_evaluation_id=baseline_id),
                subject=event.version_id, actor=ACTOR)
        log.info("scheduled evaluation %s of %s: %d memorisation and %d drift findings", completed.evaluation_id,
                 event.version_id, len(memorised), len(drifted))

    # ------------------------------------------------------------------ production drift

    async def inference_completed(self, event: InferenceCompleted, ctx: HandlerContext) -> None:
        if event.route != "local":
            return  # an upstream route is not a version this registry deployed
        findings = [f"prompt:{t}" for t in event.prompt_findings] + [f"response:{t}" for t in event.response_findings]
        self._observe(ctx, event.model_version, Observation("answered", event.output_tokens, tuple(findings)))

    async def inference_blocked(self, event: InferenceBlocked, ctx: HandlerContext) -> None:
        outcome = BLOCKED_STAGES.get(event.stage)
        if event.model_version is None or outcome is None:
            return
        observation = Observation(outcome, None, tuple(f"{event.stage}:{t}" for t in event.findings))  # type: ignore[arg-type]
        self._observe(ctx, event.model_version, observation)

    def _observe(self, ctx: HandlerContext, version_id: str, observation: Observation) -> None:
        if not is_deployed(ctx.db, version_id):
            return
        summary = self.windows.observe(version_id, observation)
        if summary is None:
            return
        stored = drift_baseline(ctx.db, version_id)
        if stored is None:
            keep_drift_baseline(ctx.db, version_id, summary.as_json())
            log.info("version %s: production baseline set from its first %d requests", version_id, summary.requests)
            return
        if self.windows.quiet(version_id):
            return
        baseline = WindowSummary.from_json(stored[0])
        established = stored[1] if stored[1].tzinfo else stored[1].replace(tzinfo=UTC)  # SQLite drops the zone
        try:
            found = compare(baseline, summary, self.windows.limits)
        except ValueError as exc:  # the length bins changed in the config since the baseline was kept
            log.warning("version %s: %s; keeping the current window as the new baseline", version_id, exc)
            keep_drift_baseline(ctx.db, version_id, summary.as_json(), replace=True)
            return
        if not found:
            return
        ctx.emit("model.drift.detected", ModelDriftDetected(
            version_id=version_id, source="production", findings=[_wire(f) for f in found],
            window=MonitoringWindow(size=summary.requests, baseline_size=baseline.requests,
                                    baseline_established_at=established.isoformat())),
            subject=version_id, actor=ACTOR)
        self.windows.reported(version_id)
        log.warning("version %s drifted in production: %s", version_id,
                    ", ".join(f"{f.metric} {f.statistic}={f.value:.3g}" for f in found))
