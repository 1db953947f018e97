"""Recurring monitoring in the evaluator (services/evaluator/monitoring.py, scheduler.py): deployments tracked
from model.deployed / model.retired; the scheduler publishes evaluation.scheduled for deployed versions only,
from one leader among replicas (real Redis leases); a scheduled re-run compared with the registering
evaluation (suites faked: the real suites' path is tests/evaluator/test_evaluator_service.py); production
drift on synthetic gateway streams: a stable stream reports nothing, a shift in block rate or output length
reports model.drift.detected."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import ValidationError

from services.evaluator.adapters.tables import (
    deployed_versions,
    metadata,
    record_outcome,
    remember_training,
    training_by_artifact,
)
from services.evaluator.domain.drift import SlidingWindows
from services.evaluator.domain.monitoring_policy import MonitoringPolicy
from services.evaluator.handlers import ACTOR, automatic_evaluation_id
from services.evaluator.monitoring import MonitoringHandlers
from services.evaluator.scheduler import Scheduler
from services.registry.domain.monitoring import summarise
from shared.bus.context import HandlerContext
from shared.events.envelope import Envelope
from shared.events.evaluation import EvaluationCompleted, GateVerdict, SuiteSummary
from shared.events.monitoring import DriftFinding
from shared.events.payloads import ArtifactRef, MethodSpec, TrainingCompleted
from shared.ids import new_job_id
from shared.stack.lease import LeaseManager
from shared.storage.db import Database

POLICY = MonitoringPolicy.model_validate({
    "scheduled": {"suites": ["memorisation", "red_team"],
                  "thresholds": {"memorisation.extraction_rate": {"max_increase": 0.05},
                                 "red_team.attack_success_rate": {"max_increase": 0.05}}},
    "production": {"window": 40, "check_every": 20, "length_edges": [16, 64]},
})


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def artifact(name: str) -> dict[str, Any]:
    return {"uri": f"cas://sha256/{sha(name)}", "sha256": sha(name)}


@dataclass
class Evaluations:
    """Stands in for EvaluatorHandlers.evaluate: returns a canned result (the suites are tested apart)."""

    metrics: dict[str, dict[str, float]]
    calls: list[tuple[str, list[str] | None]] = field(default_factory=list)

    async def evaluate(self, ctx: HandlerContext, training: TrainingCompleted, evaluation_id: str,
                       wanted: list[str] | None) -> EvaluationCompleted:
        self.calls.append((evaluation_id, wanted))
        return completed(training, evaluation_id, self.metrics)


def completed(training: TrainingCompleted, evaluation_id: str,
              metrics: dict[str, dict[str, float]]) -> EvaluationCompleted:
    return EvaluationCompleted(
        job_id=training.job_id, evaluation_id=evaluation_id, artifact=training.artifact, base_model="tiny",
        verdict=GateVerdict(policy="default", risk_tier="minimal", passed=True, checked=1),
        suites=[SuiteSummary(name=name, metrics=values) for name, values in metrics.items()],
        report=ArtifactRef(**artifact("report")), report_html=ArtifactRef(**artifact("html")))


@dataclass
class Monitor:
    db: Database
    handlers: MonitoringHandlers
    published: list[Envelope] = field(default_factory=list)

    async def deliver(self, event_type: str, subject: str, payload: dict[str, Any],
                      producer: str = "registry") -> list[Envelope]:
        envelope = Envelope(type=event_type, producer=producer, actor="test", subject=subject, payload=payload)
        table = {"model.deployed": self.handlers.model_deployed, "model.retired": self.handlers.model_retired,
                 "evaluation.scheduled": self.handlers.evaluation_scheduled,
                 "inference.completed": self.handlers.inference_completed,
                 "inference.blocked": self.handlers.inference_blocked}
        with self.db.transaction() as session:
            ctx = HandlerContext(producer="evaluator", default_actor=ACTOR, envelope=envelope, session=session,
                                 causation_id=envelope.event_id)
            await table[event_type](envelope.data, ctx)
        self.published.extend(ctx.outgoing)
        return ctx.outgoing

    async def deploy(self, version_id: str, alias: str = "triage", replaces: str | None = None) -> None:
        await self.deliver("model.deployed", version_id, {
            "version_id": version_id, "alias": alias, "tenants": ["acme"], "base_model": "tiny", "adapter": "lora",
            "artifact": artifact(version_id), "replaces": replaces})

    async def retire(self, version_id: str) -> None:
        await self.deliver("model.retired", version_id, {"version_id": version_id, "reason": "test"})

    @asynccontextmanager
    async def transaction(self, *, actor: str, subject: str | None = None) -> AsyncIterator[HandlerContext]:
        """The ServiceRuntime slice the scheduler uses."""
        with self.db.transaction() as session:
            ctx = HandlerContext(producer="evaluator", default_actor=actor, default_subject=subject, session=session)
            yield ctx
        self.published.extend(ctx.outgoing)


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[Monitor]:
    db = Database(f"sqlite:///{tmp_path / 'evaluator.sqlite3'}")
    metadata.create_all(db.engine)
    evaluations = Evaluations({"memorisation": {"extraction_rate": 0.0}, "red_team": {"attack_success_rate": 0.1}})
    handlers = MonitoringHandlers(evaluations, POLICY, SlidingWindows(POLICY.production.thresholds()))  # type: ignore[arg-type]
    yield Monitor(db, handlers)
    db.dispose()


@pytest.mark.anyio
async def test_deployments_follow_alias_moves_and_retirements(monitor: Monitor) -> None:
    await monitor.deploy("triage.v1")
    await monitor.deploy("triage.v2", replaces="triage.v1")
    await monitor.deploy("other.v1", alias="other")
    await monitor.retire("other.v1")
    with monitor.db.transaction() as session:
        assert deployed_versions(session) == {"triage.v2": sha("triage.v2")}


@pytest.mark.anyio
async def test_one_leader_schedules_deployed_versions_only_once_per_interval(monitor: Monitor, redis_url: str) -> None:
    await monitor.deploy("triage.v1")
    await monitor.deploy("triage.v2", alias="triage-b")
    await monitor.deploy("old.v1", alias="old")
    await monitor.retire("old.v1")
    client = redis.Redis.from_url(redis_url)
    replicas = [Scheduler(LeaseManager(client, f"worker-{i}", ttl_ms=1500, namespace="evaluation"), client,
                      interval_s=0.5, suites=["memorisation", "red_team"]) for i in range(2)]
    rounds = [await replica.tick(monitor) for replica in replicas]  # type: ignore[arg-type]
    assert rounds == [["triage.v1", "triage.v2"], []]  # the second replica does not lead
    scheduled = [e for e in monitor.published if e.type == "evaluation.scheduled"]
    assert [(e.subject, e.payload["artifact_sha256"], e.payload["suites"]) for e in scheduled] == [
        ("triage.v1", sha("triage.v1"), ["memorisation", "red_team"]),
        ("triage.v2", sha("triage.v2"), ["memorisation", "red_team"])]
    assert await replicas[0].tick(monitor) == []  # type: ignore[arg-type]  # not due yet
    await asyncio.sleep(0.55)
    replicas[0].release()  # the leader stops; the other takes over and keeps the cadence
    assert await replicas[1].tick(monitor) == ["triage.v1", "triage.v2"]  # type: ignore[arg-type]
    assert await replicas[0].tick(monitor) == []  # type: ignore[arg-type]
    client.close()


def training_for(version_id: str) -> TrainingCompleted:
    return TrainingCompleted(job_id=new_job_id(), artifact=ArtifactRef(**artifact(version_id)), base_model="tiny",
                             method=MethodSpec(kind="sft"), data_fingerprint=sha("data"))


def known_baseline(monitor: Monitor, training: TrainingCompleted, metrics: dict[str, dict[str, float]]) -> str:
    baseline_id = automatic_evaluation_id(training.job_id, training.artifact.sha256)
    with monitor.db.transaction() as session:
        remember_training(session, training)
        record_outcome(session, evaluation_id=baseline_id, job_id=training.job_id, outcome="completed",
                       event_id="e1", detail=completed(training, baseline_id, metrics).model_dump(mode="json"))
    return baseline_id


def scheduled(version_id: str) -> dict[str, Any]:
    return {"version_id": version_id, "artifact_sha256": sha(version_id), "suites": ["memorisation", "red_team"],
            "round": "2026-12-01T00:00:00+00:00"}


@pytest.mark.anyio
async def test_a_scheduled_rerun_reports_memorisation_and_drift_against_the_registering_evaluation(
        monitor: Monitor) -> None:
    training = training_for("triage.v1")
    baseline_id = known_baseline(monitor, training, {"memorisation": {"extraction_rate": 0.0},
                                                     "red_team": {"attack_success_rate": 0.1}})
    await monitor.deploy("triage.v1")
    assert await monitor.deliver("evaluation.scheduled", "triage.v1", scheduled("triage.v1"), "evaluator") == []

    evaluations: Evaluations = monitor.handlers.evaluations  # type: ignore[assignment]
    evaluations.metrics = {"memorisation": {"extraction_rate": 0.25}, "red_team": {"attack_success_rate": 0.3}}
    out = await monitor.deliver("evaluation.scheduled", "triage.v1", scheduled("triage.v1"), "evaluator")
    by_type = {e.type: e.payload for e in out}
    memorised, drifted = by_type["model.memorisation.detected"], by_type["model.drift.detected"]
    assert memorised["baseline_evaluation_id"] == baseline_id
    assert [(f["metric"], f["statistic"], f["baseline"], f["current"]) for f in memorised["findings"]] == [
        ("memorisation.extraction_rate", "increase", 0.0, 0.25)]
    assert drifted["source"] == "scheduled_evaluation"
    assert [f["metric"] for f in drifted["findings"]] == ["red_team.attack_success_rate"]
    assert [wanted for _, wanted in evaluations.calls] == [["memorisation", "red_team"]] * 2

    await monitor.retire("triage.v1")  # retired between scheduling and delivery: not evaluated
    assert await monitor.deliver("evaluation.scheduled", "triage.v1", scheduled("triage.v1"), "evaluator") == []
    assert len(evaluations.calls) == 2


@pytest.mark.anyio
async def test_a_metric_that_turns_non_finite_in_a_scheduled_rerun_is_reported(monitor: Monitor) -> None:
    """A re-run whose metrics are NaN (in process) or null (how NaN travels in evaluation.completed) must
    not read as "no change": each is a finding naming the metric and the problem (`problem`, no value), the
    events are valid on the wire (JSON has no NaN), and the registry's summary says what happened."""
    training = training_for("triage.v1")
    known_baseline(monitor, training, {"memorisation": {"extraction_rate": 0.0},
                                       "red_team": {"attack_success_rate": 0.1}})
    await monitor.deploy("triage.v1")
    evaluations: Evaluations = monitor.handlers.evaluations  # type: ignore[assignment]
    evaluations.metrics = {"memorisation": {"extraction_rate": float("nan")},
                           "red_team": {"attack_success_rate": None}}  # type: ignore[dict-item]
    out = await monitor.deliver("evaluation.scheduled", "triage.v1", scheduled("triage.v1"), "evaluator")
    by_type = {e.type: Envelope.from_wire(e.to_wire()).payload for e in out}
    assert set(by_type) == {"model.memorisation.detected", "model.drift.detected"}
    memorised, drifted = by_type["model.memorisation.detected"], by_type["model.drift.detected"]
    assert [(f["metric"], f["statistic"], f["problem"], f["value"], f["baseline"], f["current"])
            for f in memorised["findings"]] == [
        ("memorisation.extraction_rate", "increase", "value_nan", None, 0.0, None)]
    assert [(f["metric"], f["problem"], f["value"], f["baseline"], f["current"]) for f in drifted["findings"]] == [
        ("red_team.attack_success_rate", "value_missing", None, 0.1, None)]
    assert summarise(memorised["findings"] + drifted["findings"]) == (
        "memorisation.extraction_rate not a finite number (nan; max increase 0.05); "
        "red_team.attack_success_rate not a finite number (missing; max increase 0.05)")


def test_a_drift_finding_has_a_value_or_a_problem_never_both_nor_neither() -> None:
    DriftFinding(metric="s.m", statistic="increase", value=0.2, threshold=0.1)
    DriftFinding(metric="s.m", statistic="increase", value=None, threshold=0.1, problem="value_inf")
    for value, problem in ((None, None), (0.2, "value_nan")):
        with pytest.raises(ValidationError, match="either a value or the problem"):
            DriftFinding(metric="s.m", statistic="increase", value=value, threshold=0.1, problem=problem)


def test_an_artefact_two_jobs_produced_is_the_first_jobs_whatever_the_row_order(monitor: Monitor) -> None:
    """Same data, seed and settings give the same bytes. The later job recorded first, then the earlier one
    updated (every re-run rewrites its row, which moves it on PostgreSQL): the earlier job is still the one."""
    first, second = sorted((training_for("triage.v1") for _ in range(2)), key=lambda t: t.job_id)
    with monitor.db.transaction() as session:
        remember_training(session, second)
        remember_training(session, first)
        remember_training(session, first)
    with monitor.db.transaction() as session:
        found = training_by_artifact(session, sha("triage.v1"))
    assert found is not None and found.job_id == first.job_id


def answered(version_id: str, i: int, tokens: int = 20, **extra: Any) -> dict[str, Any]:
    return {"request_id": f"req_{i:032x}", "key_id": "key_0123456789abcdef", "tenant": "acme", "model": "triage",
            "model_version": version_id, "route": "local", "operation": "chat", "streamed": False,
            "prompt_sha256": sha(f"p{i}"), "response_sha256": sha(f"r{i}"), "input_tokens": 10,
            "output_tokens": tokens + i % 7, "latency_ms": 5.0, "overhead_ms": 1.0, "policy": "default",
            "decision": "allowed", "watermark": False, **extra}


def blocked(version_id: str, i: int) -> dict[str, Any]:
    return {"request_id": f"req_{i:032x}", "model": "triage", "model_version": version_id, "stage": "prompt",
            "check": "injection", "reason": "jailbreak", "status_code": 400}


async def traffic(monitor: Monitor, version_id: str, start: int, count: int, *, block_every: int = 0,
                  tokens: int = 20) -> list[Envelope]:
    out: list[Envelope] = []
    for i in range(start, start + count):
        if block_every and i % block_every == 0:
            out += await monitor.deliver("inference.blocked", version_id, blocked(version_id, i), "gateway")
        else:
            out += await monitor.deliver("inference.completed", version_id, answered(version_id, i, tokens), "gateway")
    return out


@pytest.mark.anyio
async def test_production_drift_on_synthetic_gateway_streams(monitor: Monitor) -> None:
    started = time.monotonic()
    await monitor.deploy("triage.v1")
    assert await traffic(monitor, "triage.v1", 0, 40, block_every=20) == []  # the first window: the baseline
    assert await traffic(monitor, "triage.v1", 40, 80, block_every=20) == []  # stable: nothing to report
    # A jailbreak wave: every other request blocked at the prompt.
    [report] = await traffic(monitor, "triage.v1", 120, 20, block_every=2)
    assert report.type == "model.drift.detected" and report.subject == "triage.v1"
    payload = report.payload
    assert payload["source"] == "production" and payload["window"]["size"] == 40
    [finding] = [f for f in payload["findings"] if f["metric"] == "block_rate"]
    assert finding["statistic"] == "chi_square" and finding["p_value"] < POLICY.production.rate_p_value
    # Found at the first check inside the wave, half of the window into it: 11 of 40 blocked.
    assert finding["baseline"] == 0.05 and finding["current"] == 0.275
    assert payload["window"]["baseline_established_at"].endswith("+00:00")
    # Reported once per window, not on every check while the shift lasts.
    assert await traffic(monitor, "triage.v1", 140, 30, block_every=2) == []

    # Refusals at the access stage (keys, budgets) and the model stage say nothing about the model.
    for i, stage in enumerate(("access", "model")):
        await monitor.deliver("inference.blocked", "triage.v1", {**blocked("triage.v1", 900 + i), "stage": stage},
                              "gateway")
    assert monitor.handlers.windows._versions["triage.v1"].seen == 170

    # Another version whose answers grow from about 20 to about 100 tokens.
    await monitor.deploy("triage.v2", alias="triage-b")
    await traffic(monitor, "triage.v2", 0, 40)
    [longer] = await traffic(monitor, "triage.v2", 40, 40, tokens=100)
    assert [f["metric"] for f in longer.payload["findings"]] == ["output_length"]
    # Records of versions not deployed (upstream routes, retired versions) are not watched.
    await monitor.retire("triage.v2")
    assert await traffic(monitor, "triage.v2", 80, 80, block_every=2) == []
    assert len(monitor.handlers.windows) == 1
    assert time.monotonic() - started < 20
