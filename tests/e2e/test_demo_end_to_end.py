"""`make demo` as a test: the whole path of one job through real service processes, the real CLI and a
real Redis started by `tunegate up`, in a temporary TUNEGATE_HOME."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from services.cli.demo import Demo

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_runs_submit_scan_two_approvals_training_and_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TUNEGATE_REDIS_URL", raising=False)
    monkeypatch.delenv("TUNEGATE_DATABASE_URL", raising=False)
    home = tmp_path / "home"
    console = Console(record=True, width=120)
    result = Demo(home, console).execute()
    transcript = console.export_text()

    assert result.final_state == "trained", transcript[-4000:]
    assert result.preflight_exit == 0, "the demo dataset is redactable, not blocked"
    job = result.job
    assert job["scan_summary"]["verdict"] == "redacted"
    assert job["risk_tier"] == "high" and job["required_approvals"] == 2
    assert [a["approver"] for a in job["approvals"]] == ["demo-approver-1", "demo-approver-2"]
    states = [h["to_state"] for h in job["history"]]
    assert states == [
        "requested",
        "accepted",
        "scanning",
        "awaiting_approval",
        "approved",
        "training",
        "trained",
    ]
    assert job["training_result"]["artifact"]["sha256"]
    assert result.audit_verified and result.proof_verified

    # Planted secrets and personal data were found and redacted before training.
    report = json.loads((home / "demo" / "scan-report.json").read_text())
    found = {entity for entity, actions in report["totals"].items() if actions.get("redact")}
    assert {"EMAIL_ADDRESS", "CREDIT_CARD", "AWS_ACCESS_KEY"} <= found, found
    assert "AKIAIOSFODNN7EXAMPLE" not in (home / "demo" / "orders.redacted.jsonl").read_text()

    # One job = one trace across processes.
    trace_ids: dict[str, set[str]] = {}
    for trace_file in (home / "traces").glob("*.jsonl"):
        for line in trace_file.read_text().splitlines():
            span = json.loads(line)
            if span["attributes"].get("tunegate.subject") == result.job_id:
                trace_ids.setdefault(trace_file.stem, set()).add(span["trace_id"])
    assert {"cli", "registry", "scanner", "trainer"} <= set(trace_ids), trace_ids
    assert len(set().union(*trace_ids.values())) == 1, trace_ids

    # `tunegate down` stopped everything it started.
    assert not any((home / "run").glob("*.pid.json"))
    assert os.environ.get("TUNEGATE_HOME") != str(home)
