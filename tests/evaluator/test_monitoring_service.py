"""Recurring monitoring in the real evaluator process over a real Redis: a model.deployed from the registry
makes the scheduler publish evaluation.scheduled for that version on its interval, and gateway records
showing a block-rate shift end in model.drift.detected on tunegate.models, signed by the evaluator."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import redis

from shared.events.envelope import Envelope
from tests.support import ServiceProcess, publish_signed, read_stream, wait_for

pytestmark = [pytest.mark.integration]

MONITORING = """
scheduled:
  suites: [memorisation, red_team]
  thresholds: {memorisation.extraction_rate: {max_increase: 0.05}}
production: {window: 20, check_every: 10, length_edges: [16, 64]}
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def request(i: int, blocked: bool) -> Envelope:
    common = {"request_id": f"req_{i:032x}", "model": "triage", "model_version": "triage.v1"}
    if blocked:
        return Envelope(type="inference.blocked", producer="gateway", actor="key_0123456789abcdef", subject="triage",
                        payload={**common, "stage": "prompt", "check": "injection", "reason": "jailbreak",
                                 "status_code": 400})
    return Envelope(type="inference.completed", producer="gateway", actor="key_0123456789abcdef", subject="triage",
                    payload={**common, "key_id": "key_0123456789abcdef", "tenant": "acme", "route": "local",
                             "operation": "chat", "streamed": False, "prompt_sha256": sha(f"p{i}"),
                             "response_sha256": sha(f"r{i}"), "input_tokens": 9, "output_tokens": 20 + i % 5,
                             "latency_ms": 3.0, "overhead_ms": 1.0, "policy": "default", "decision": "allowed",
                             "watermark": False})


def test_the_evaluator_schedules_deployed_versions_and_reports_production_drift(
    tunegate_home: Path, redis_url: str, tmp_path: Path,
) -> None:
    (tmp_path / "monitoring.yaml").write_text(MONITORING)
    client = redis.Redis.from_url(redis_url)
    worker = ServiceProcess("services.evaluator", tunegate_home, redis_url, extra_env={
        "TUNEGATE_EVALUATOR_MONITORING_FILE": str(tmp_path / "monitoring.yaml"),
        "TUNEGATE_EVALUATOR_MONITOR_INTERVAL_S": "1", "TUNEGATE_EVALUATOR_NER": "false"})
    try:
        worker.wait_ready()
        deployed = Envelope(type="model.deployed", producer="registry", actor="dora", subject="triage.v1", payload={
            "version_id": "triage.v1", "alias": "triage", "tenants": ["acme"], "base_model": "tiny",
            "adapter": "lora", "artifact": {"uri": f"cas://sha256/{sha('a')}", "sha256": sha("a")}})
        publish_signed(redis_url, deployed)

        def scheduled() -> list[Envelope]:
            return [e for e in read_stream(client, "tunegate.evaluation") if e.type == "evaluation.scheduled"]

        [first, *_] = wait_for(scheduled, 30, "evaluation.scheduled")
        assert first.producer == "evaluator" and first.subject == "triage.v1"
        assert first.data.artifact_sha256 == sha("a") and first.data.suites == ["memorisation", "red_team"]

        publish_signed(redis_url, *[request(i, blocked=i % 10 == 0) for i in range(20)])  # baseline: 10% blocked
        publish_signed(redis_url, *[request(i, blocked=i % 2 == 0) for i in range(20, 40)])  # 50% blocked

        def drift() -> list[Envelope]:
            return [e for e in read_stream(client, "tunegate.models") if e.type == "model.drift.detected"]

        [report] = wait_for(drift, 30, "model.drift.detected")
        assert report.producer == "evaluator" and report.signature
        assert report.data.source == "production" and report.data.window is not None
        assert "block_rate" in [f.metric for f in report.data.findings]
    finally:
        worker.stop()
    client.close()
