"""The evaluator as a real process over a real Redis: training.completed -> evaluation.started and one
evaluation.completed with the verdict, both reports stored and hashed; a re-run on evaluation.requested;
an artefact whose bytes changed is refused; SIGKILL mid-evaluation -> another worker restarts it and the
result is published and recorded once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from services.trainer.engine.packaging import store_directory
from shared.datasets import dataset_fingerprint
from shared.evaluation.holdout import HeldOut, choose_held_out, split
from shared.evaluation.options import EvaluationOptions
from shared.events.envelope import Envelope
from shared.events.payloads import MethodSpec, TrainingCompleted
from shared.ids import new_job_id
from shared.models.bases import BaseModelInfo
from shared.storage.artifacts import ArtifactStore
from tests.evaluator.evaluator_support import train
from tests.support import ServiceProcess, publish_signed, read_stream, service_rows, wait_for
from tests.trainer.test_trainer_service import share_built_tiny
from tests.trainer.trainer_data import chat_records, write_jsonl

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST_LEASES = {"TUNEGATE_EVALUATOR_LEASE_TTL_MS": "2000", "TUNEGATE_EVALUATOR_HEARTBEAT_S": "0.4"}
GATE = """
name: service-test
tiers:
  minimal: {thresholds: {"heldout_nll.mean_nll": {max_increase: 0.0}}}
  limited: {thresholds: {}}
  high: {thresholds: {"heldout_nll.mean_nll": {max: 0.0}}}
"""


def suites_file(tmp_path: Path, *, slow_s: float = 0.0) -> Path:
    entries = ["  - name: heldout_nll\n    class: tests.evaluator.probe_suites:HeldOutNllSuite\n"]
    if slow_s:
        entries.append(f"  - name: slow\n    class: tests.evaluator.probe_suites:SlowSuite\n"
                       f"    config: {{seconds: {slow_s}}}\n")
    path = tmp_path / "suites.yaml"
    path.write_text('version: "test-1"\nsuites:\n' + "".join(entries))
    (tmp_path / "gate.yaml").write_text(GATE)
    return path


MONITORING = """
scheduled:
  suites: [heldout_nll]
  thresholds: {heldout_nll.mean_nll: {max_increase: 0.0}}
"""


def env(tmp_path: Path, suites: Path) -> dict[str, str]:
    (tmp_path / "monitoring.yaml").write_text(MONITORING)
    return {**FAST_LEASES, "TUNEGATE_EVALUATOR_SUITES_FILE": str(suites),
            "TUNEGATE_EVALUATOR_GATE_FILE": str(tmp_path / "gate.yaml"), "TUNEGATE_EVALUATOR_NER": "false",
            "TUNEGATE_EVALUATOR_MONITORING_FILE": str(tmp_path / "monitoring.yaml"),
            "TUNEGATE_EVALUATOR_MONITOR_INTERVAL_S": "0"}


@pytest.fixture(scope="module")
def trained(tiny_base: BaseModelInfo, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[int]]:
    """A LoRA trained on 21 of 24 records (3 held out, as the trainer would hold them out)."""
    work = tmp_path_factory.mktemp("evaluator-service")
    records = chat_records(24, seed=5)
    data = write_jsonl(work / "train.jsonl", records)
    held = choose_held_out(len(records), 0.15, seed=1)
    trained_on, _ = split(records, held)
    return data, train(tiny_base, work / "run", trained_on, "chat", hyperparameters={"max_steps": 20}), held


def completed_event(home: Path, tiny_base: BaseModelInfo, trained: tuple[Path, Path, list[int]], *,
                    risk_tier: str = "minimal", job_id: str | None = None) -> Envelope:
    data, model_dir, held = trained
    store = ArtifactStore(home / "artifacts")
    dataset = store.put_file(data)
    fingerprint = dataset_fingerprint(data)
    held_out = store.put_bytes(HeldOut(job_id="x", record_count=24, data_fingerprint=fingerprint, seed=1,
                                       fraction=0.15, indices=held).to_json())
    job_id = job_id or new_job_id()
    payload = TrainingCompleted(
        job_id=job_id, artifact=store_directory(store, model_dir), base_model="tiny",
        base_model_sha256=tiny_base.sha256, method=MethodSpec(kind="sft"), data_fingerprint=fingerprint,
        dataset=dataset, held_out=held_out, risk_tier=risk_tier, evaluation=EvaluationOptions(holdout_fraction=0.15),
        seed=1,
    )
    return Envelope(type="training.completed", producer="trainer", actor="system:trainer", subject=job_id,
                    payload=payload.model_dump(mode="json"))


def events(client: redis.Redis, job_id: str, event_type: str) -> list[Envelope]:
    return [e for e in read_stream(client, "tunegate.evaluation") if e.subject == job_id and e.type == event_type]


def test_training_completed_is_evaluated_once_with_a_verdict_and_stored_reports(
    tunegate_home: Path, redis_url: str, tiny_base: BaseModelInfo, tmp_path: Path,
    trained: tuple[Path, Path, list[int]],
) -> None:
    share_built_tiny(tunegate_home, tiny_base)
    client = redis.Redis.from_url(redis_url)
    # Both jobs produced the same artefact; its scheduled run below is the first job's (job ids sort by
    # creation, to the millisecond: sorted, so two made in one millisecond are in order too).
    first_id, second_id = sorted(new_job_id() for _ in range(2))
    minimal = completed_event(tunegate_home, tiny_base, trained, job_id=first_id)
    high = completed_event(tunegate_home, tiny_base, trained, risk_tier="high", job_id=second_id)
    worker = ServiceProcess("services.evaluator", tunegate_home, redis_url,
                            extra_env=env(tmp_path, suites_file(tmp_path)))
    try:
        worker.wait_ready()
        publish_signed(redis_url, minimal, high)
        publish_signed(redis_url, minimal)  # a redelivered training.completed evaluates nothing twice
        for job in (minimal, high):
            wait_for(lambda job=job: events(client, job.subject, "evaluation.completed"), 240, "evaluation.completed")
        done = events(client, minimal.subject, "evaluation.completed")
        assert len(done) == 1
        verdict = done[0].data.verdict
        [suite] = done[0].data.suites
        assert suite.metrics["mean_nll"] < suite.base_metrics["mean_nll"], "fine-tuning lowered held-out NLL"
        assert suite.metrics["records"] == len(trained[2]) == 3, "the held-out records, not the training ones"
        assert verdict.passed and verdict.risk_tier == "minimal" and verdict.checked == 1
        # The high tier demands an impossible NLL: the same artefact fails there, with the metric named.
        [high_done] = events(client, high.subject, "evaluation.completed")
        assert not high_done.data.verdict.passed
        [failure] = high_done.data.verdict.failures
        assert (failure.metric, failure.rule, failure.threshold) == ("heldout_nll.mean_nll", "max", 0.0)
        store = ArtifactStore(tunegate_home / "artifacts")
        report = json.loads(store.verify(done[0].data.report).read_bytes())
        assert report["job_id"] == minimal.subject and report["verdict"]["passed"] is True
        assert b"<html" in store.verify(done[0].data.report_html).read_bytes()[:200].lower()
        [started] = events(client, minimal.subject, "evaluation.started")
        assert started.data.evaluation_id == done[0].data.evaluation_id and started.data.suites == ["heldout_nll"]

        # A re-run on demand (the registry asks): a new evaluation id, the same artefact, the same numbers.
        rerun = Envelope(type="evaluation.requested", producer="registry", actor="alice", subject=minimal.subject,
                         payload={"job_id": minimal.subject, "requested_by": "alice", "reason": "audit"})
        publish_signed(redis_url, rerun)
        wait_for(lambda: len(events(client, minimal.subject, "evaluation.completed")) == 2, 240, "the re-run")
        first, second = events(client, minimal.subject, "evaluation.completed")
        assert second.data.evaluation_id != first.data.evaluation_id
        assert second.causation_id == rerun.event_id and second.data.verdict.complete
        assert second.data.suites[0].metrics == first.data.suites[0].metrics

        # A scheduled re-evaluation of the deployed artefact: the evaluator finds its training and the evaluation
        # that registered it; the same numbers again are no drift.
        deployed = Envelope(type="model.deployed", producer="registry", actor="dora", subject="triage.v1", payload={
            "version_id": "triage.v1", "alias": "triage", "tenants": ["acme"], "base_model": "tiny",
            "adapter": "lora", "artifact": minimal.data.artifact.model_dump(mode="json")})
        scheduled = Envelope(type="evaluation.scheduled", producer="evaluator", actor="system:evaluator",
                             subject="triage.v1", payload={
                                 "version_id": "triage.v1", "artifact_sha256": minimal.data.artifact.sha256,
                                 "suites": ["heldout_nll"], "round": "2026-12-01T00:00:00+00:00"})
        publish_signed(redis_url, deployed)
        publish_signed(redis_url, scheduled)
        wait_for(lambda: len(events(client, minimal.subject, "evaluation.completed")) == 3, 240, "the scheduled run")
        third = events(client, minimal.subject, "evaluation.completed")[2]
        assert third.causation_id == scheduled.event_id and third.data.suites[0].metrics == first.data.suites[0].metrics
        assert [e.type for e in read_stream(client, "tunegate.models") if e.producer == "evaluator"] == []
        compared = f"scheduled evaluation {third.data.evaluation_id} of triage.v1: 0 memorisation and 0 drift findings"
        wait_for(lambda: compared in worker.log(), 10, "the comparison with the registering evaluation")

        # Unknown suites and unknown jobs fail clearly, as evaluation.failed.
        bad = Envelope(type="evaluation.requested", producer="registry", actor="alice", subject=minimal.subject,
                       payload={"job_id": minimal.subject, "requested_by": "alice", "suites": ["nope"]})
        stranger = new_job_id()
        unknown = Envelope(type="evaluation.requested", producer="registry", actor="alice", subject=stranger,
                           payload={"job_id": stranger, "requested_by": "alice"})
        publish_signed(redis_url, bad, unknown)
        [failed] = wait_for(lambda: events(client, minimal.subject, "evaluation.failed"), 60, "unknown suite")
        assert "unknown suite(s) nope" in failed.data.reason
        [failed] = wait_for(lambda: events(client, stranger, "evaluation.failed"), 60, "unknown job")
        assert f"no completed training of job {stranger}" in failed.data.reason
    finally:
        worker.stop()


def test_an_artefact_whose_bytes_changed_is_refused(
    tunegate_home: Path, redis_url: str, tiny_base: BaseModelInfo, tmp_path: Path,
    trained: tuple[Path, Path, list[int]],
) -> None:
    share_built_tiny(tunegate_home, tiny_base)
    client = redis.Redis.from_url(redis_url)
    job = completed_event(tunegate_home, tiny_base, trained)
    store = ArtifactStore(tunegate_home / "artifacts")
    path = store.resolve(job.data.artifact.uri)
    path.chmod(0o600)
    path.write_bytes(path.read_bytes()[:-10] + b"0" * 10)
    worker = ServiceProcess("services.evaluator", tunegate_home, redis_url,
                            extra_env=env(tmp_path, suites_file(tmp_path)))
    try:
        worker.wait_ready()
        publish_signed(redis_url, job)
        [failed] = wait_for(lambda: events(client, job.subject, "evaluation.failed"), 120, "evaluation.failed")
        assert "unusable" in failed.data.reason and "sha256" in failed.data.reason.lower()
        assert not events(client, job.subject, "evaluation.completed")
    finally:
        worker.stop()


def test_sigkill_mid_evaluation_is_restarted_by_another_worker_and_recorded_once(
    tunegate_home: Path, redis_url: str, tiny_base: BaseModelInfo, tmp_path: Path,
    trained: tuple[Path, Path, list[int]],
) -> None:
    share_built_tiny(tunegate_home, tiny_base)
    client = redis.Redis.from_url(redis_url)
    job = completed_event(tunegate_home, tiny_base, trained)
    settings = env(tmp_path, suites_file(tmp_path, slow_s=8.0))
    first = ServiceProcess("services.evaluator", tunegate_home, redis_url, extra_env=settings)
    second = None
    try:
        first.wait_ready()
        publish_signed(redis_url, job)
        wait_for(lambda: events(client, job.subject, "evaluation.started"), 120, "the evaluation under way")
        first.kill()
        assert not events(client, job.subject, "evaluation.completed")
        second = ServiceProcess("services.evaluator", tunegate_home, redis_url, extra_env=settings)
        second.wait_ready()
        wait_for(lambda: events(client, job.subject, "evaluation.completed"), 240, "completion on the second worker")
        [done] = events(client, job.subject, "evaluation.completed")
        assert done.data.verdict.complete, "every configured suite ran"
        started = events(client, job.subject, "evaluation.started")
        assert len(started) == 2 and started[0].data.worker_id != started[1].data.worker_id
        rows = service_rows(tunegate_home, "evaluator", "SELECT count(*) FROM evaluator_evaluations WHERE job_id = :j",
                            {"j": job.subject})
        assert rows == [(1,)], "the result is recorded once"
        # A re-run of some suites says so: the registry will not let it replace the job's verdict.
        partial = Envelope(type="evaluation.requested", producer="registry", actor="alice", subject=job.subject,
                           payload={"job_id": job.subject, "requested_by": "alice", "suites": ["heldout_nll"]})
        publish_signed(redis_url, partial)
        wait_for(lambda: len(events(client, job.subject, "evaluation.completed")) == 2, 120, "the partial re-run")
        rerun = events(client, job.subject, "evaluation.completed")[1]
        assert not rerun.data.verdict.complete and [s.name for s in rerun.data.suites] == ["heldout_nll"]
    finally:
        first.kill()
        if second is not None:
            second.stop()
