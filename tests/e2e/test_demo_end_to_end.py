"""`make demo` as a test: the whole path of one job through real service processes, the real CLI and a
real Redis started by `tunegate up`, in a temporary TUNEGATE_HOME."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from rich.console import Console

from services.cli.demo import Demo
from shared.events.payloads import ArtifactRef
from shared.storage.artifacts import ArtifactStore

# `make demo` as a user runs it, on its default database (SQLite): the PostgreSQL runs of the integration suite
# (TUNEGATE_TEST_DATABASE_URL) leave it as it is, and the chaos run covers the whole stack on PostgreSQL.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.sqlite_only]


def assert_one_trace_per_job(home: Path, job_id: str) -> None:
    """The shape of a job's trace: one trace from the CLI's submit to the last event, with every service's
    spans in it (the audit ledger's too); consumers continue traces instead of starting their own; the
    approval requests are traces of their own that link to the job's; messaging attributes per the
    current OpenTelemetry conventions."""
    spans = [
        json.loads(line) | {"file": trace_file.stem}
        for trace_file in (home / "traces").glob("*.jsonl")
        for line in trace_file.read_text().splitlines()
    ]
    of_job = [s for s in spans if s["attributes"].get("tunegate.subject") == job_id]
    job_traces = {s["trace_id"] for s in of_job}
    assert len(job_traces) == 1, job_traces
    [job_trace] = job_traces
    assert {"cli", "registry", "scanner", "trainer", "audit"} <= {s["file"] for s in of_job}
    consumers = [s for s in spans if s["kind"] == "CONSUMER"]
    assert consumers and all(s["parent_span_id"] for s in consumers), "no consumer starts a stray trace"
    for span in consumers:
        attributes = span["attributes"]
        assert span["name"] == f"process {attributes['messaging.destination.name']}"
        assert attributes["messaging.system"] == "redis" and attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.consumer.group.name"] == f"tunegate-{span['file']}"
        assert attributes["messaging.message.id"] and "messaging.operation" not in attributes
    audit_of_job = [s for s in of_job if s["file"] == "audit"]
    assert {s["attributes"]["tunegate.event.type"] for s in audit_of_job} >= {
        "job.requested", "training.completed", "evaluation.completed"}
    producers = [s for s in of_job if s["kind"] == "PRODUCER"]
    assert producers and all(s["name"].startswith("send tunegate.") for s in producers)
    approvals = [s for s in spans if s["kind"] == "SERVER" and s["name"] == "POST /jobs/{job_id}/approvals"]
    linked_to_job = []
    for request in approvals:
        assert request["trace_id"] != job_trace, "an approval request is a trace of its own"
        in_request = [s for s in spans if s["trace_id"] == request["trace_id"]]
        links = [link["trace_id"] for s in in_request for link in s["links"]]
        assert len(links) == 1, "linked to its job's trace"
        linked_to_job += [request] if links == [job_trace] else []
    assert len(linked_to_job) == 2, "the job's two approvals link to its trace"


def test_demo_runs_submit_scan_approvals_training_evaluation_registry_deployment_gateway_and_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TUNEGATE_REDIS_URL", raising=False)
    monkeypatch.delenv("TUNEGATE_DATABASE_URL", raising=False)
    home = tmp_path / "home"
    console = Console(record=True, width=120)
    result = Demo(home, console).execute()
    transcript = console.export_text()

    assert result.final_state in ("evaluated", "gate_failed"), transcript[-4000:]
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
        "evaluating",
        result.final_state,
    ]
    assert job["training_result"]["artifact"]["sha256"]
    # The evaluation: every configured suite ran against the base, the verdict and both reports are on record.
    evaluation = job["latest_evaluation"]
    assert evaluation["risk_tier"] == "high" and evaluation["passed"] == (result.final_state == "evaluated")
    store = ArtifactStore(home / "artifacts")
    report = json.loads(store.verify(ArtifactRef.model_validate(evaluation["report"])).read_bytes())
    assert report["verdict"]["passed"] == evaluation["passed"]
    ran = {suite["name"] for suite in report["suites"] if suite["status"] != "skipped"}
    assert ran >= {"task_quality", "memorisation", "pii_leakage", "red_team", "bias", "hallucination"}, ran
    assert f"$ tunegate eval show {result.job_id}" in transcript
    assert "web console: http://127.0.0.1:" in transcript and "demo-auditor: tg_" in transcript
    assert result.audit_verified and result.proof_verified

    # Planted secrets and personal data were found and redacted before training.
    report = json.loads((home / "demo" / "scan-report.json").read_text())
    found = {entity for entity, actions in report["totals"].items() if actions.get("redact")}
    assert {"EMAIL_ADDRESS", "CREDIT_CARD", "AWS_ACCESS_KEY"} <= found, found
    assert "AKIAIOSFODNN7EXAMPLE" not in (home / "demo" / "orders.redacted.jsonl").read_text()

    # The model registry: both evaluated artefacts are model versions; the minimal-risk one was approved by an
    # approver other than its job's requester and deployed under an alias; its AIBOM is proven in the ledger.
    assert result.gated_version["job_id"] == result.job_id
    assert result.gated_version["gate_passed"] == (result.final_state == "evaluated")
    assert result.release_job["state"] == "evaluated", transcript[-4000:]
    version = result.version
    assert version["state"] == "deployed" and version["alias"] == "support-triage"
    assert version["tenants"] == ["demo-tenant"] and version["approvals"][0]["approver"] == "demo-approver-2"
    assert [t["to_state"] for t in version["transitions"]] == ["candidate", "approved", "deployed"]
    aibom = json.loads(Path(result.aibom_path).read_text())
    assert aibom["specVersion"] == "1.6" and aibom["metadata"]["component"]["type"] == "machine-learning-model"
    assert result.aibom_verified, transcript[-4000:]
    assert "AIBOM:" in transcript and Path(result.aibom_path).is_file()
    # `tunegate status`: the gated and release versions, the reward model, the RLHF policy, the erasure's
    # replacement.
    assert result.models_status == {"checked": True, "versions": 5, "overdue": []}

    # RLHF from the release version (services/cli/demo_rlhf.py): a reward model approved as a job and as a
    # version after its suite; an rlhf job from the release version against it, approved with its why_not_dpo,
    # trained within its KL bound, evaluated by the reward_hacking suite, its AIBOM listing both versions.
    rlhf = result.rlhf
    assert rlhf is not None, transcript[-4000:]
    assert rlhf.reward_model_job["state"] == "evaluated", transcript[-4000:]
    reward_model = rlhf.reward_model_version
    assert reward_model["state"] == "approved" and reward_model["gate_passed"]
    rm_report = json.loads(store.verify(ArtifactRef.model_validate(
        rlhf.reward_model_job["latest_evaluation"]["report"])).read_bytes())
    rm_suite = next(s for s in rm_report["suites"] if s["name"] == "reward_model")
    assert rm_suite["metrics"]["pairwise_accuracy"]["tuned"] > 0.5, rm_suite  # above chance on held-out pairs
    policy_job = rlhf.rlhf_job
    assert policy_job["state"] in ("evaluated", "gate_failed"), transcript[-4000:]
    rlhf_spec = policy_job["spec"]["method"]["rlhf"]
    assert rlhf_spec["policy_version"] == version["id"] and rlhf_spec["reward_model_version"] == reward_model["id"]
    assert policy_job["spec"]["use_case"]["why_not_dpo"] and "why_not_dpo" in policy_job["approvals"][0]["comment"]
    metrics = policy_job["training_result"]["metrics"]
    assert metrics["kl_max"] <= metrics["kl_bound"] == 1.0 and "reward_last" in metrics
    policy_report = json.loads(store.verify(ArtifactRef.model_validate(
        policy_job["latest_evaluation"]["report"])).read_bytes())
    hacking = next(s for s in policy_report["suites"] if s["name"] == "reward_hacking")
    assert hacking["status"] != "skipped" and "hacked" in hacking["metrics"], hacking
    assert rlhf.rlhf_version["job_id"] == policy_job["id"]
    assert {f"start-policy:{version['id']}", f"reward-model:{reward_model['id']}"} <= set(rlhf.aibom_dependencies)

    # The gateway: the deployed alias through the openai client, personal data redacted before the model saw
    # it, a jailbreak refused, a stream, the provenance signature verified offline, the records in the ledger.
    tour = result.gateway
    assert tour is not None, transcript[-4000:]
    assert "support-triage" in tour.models and tour.answer and tour.streamed
    assert tour.marking["ai_generated"] is True and tour.marking["model_version"] == version["id"]
    assert {"EMAIL_ADDRESS", "PHONE_NUMBER", "PERSON"} <= set(tour.marking["dlp"]["prompt"]), tour.marking
    assert tour.headers["x-tunegate-ai-generated"] == "true" and tour.headers["x-tunegate-provenance"]
    assert tour.jailbreak_status == 400 and "prompt-injection" in tour.jailbreak_message
    assert "policy demo-tenant" in tour.jailbreak_message
    assert tour.provenance_verified, transcript[-4000:]
    assert {"inference.completed", "inference.blocked"} <= set(tour.ledger_types), tour.ledger_types

    # An incident on the deployed version, shown by `tunegate status`, and the version's evidence pack: its
    # counts as printed, the incident in it, every ledger entry proven, every link in the HTML resolving.
    assert result.incidents_status == {"checked": True, "open": 1, "overdue": []}
    pack_dir = Path(result.evidence_dir)
    pack = json.loads((pack_dir / "evidence.json").read_text())
    summary = pack["summary"]
    counts = {k: summary[k] for k in ("evidenced", "partly", "gap", "not_applicable")}
    assert counts == {k: result.evidence[k] for k in counts} and sum(counts.values()) == len(pack["obligations"])
    assert counts["evidenced"] > 0 and summary["proofs_verified"] == summary["audit_entries"] > 0
    assert [i["ref"] for i in pack["evidence"]["incidents"]["items"]] == [result.incident_id]
    html = (pack_dir / "evidence.html").read_text()
    assert set(re.findall(r'href="#([^"]+)"', html)) <= set(re.findall(r'id="([^"]+)"', html))

    # A customer's erasure: both versions trained on their records are tainted and retired, the deployed one
    # at once, and so is the RLHF policy that started from the deployed one (derived lineage); the retraining
    # job drops exactly their records and passes the gate; its version serves the alias through the gateway;
    # the certificate names it and verifies against the audit key.
    er = result.erasure
    assert er is not None, transcript[-4000:]
    tainted = [version["id"], result.gated_version["id"], rlhf.rlhf_version["id"]]
    assert er.subject_records >= 1 and sorted(er.erasure["versions"]) == sorted(tainted)
    [located] = er.erasure["datasets"][:1]
    assert len(located["record_hashes"]) == er.subject_records
    assert er.retired["state"] == "retired" and er.erasure["served"] == {"support-triage": version["id"]}
    retrain = er.retraining_job
    assert retrain["state"] == "evaluated" and f"{er.subject_records} record(s) removed" in json.dumps(er.final)
    assert retrain["data_fingerprint"] not in {d["fingerprint"] for d in er.erasure["datasets"]}
    replacement = er.replacement
    assert replacement["state"] == "deployed" and replacement["alias"] == "support-triage"
    assert replacement["job_id"] == retrain["id"] and er.served_version == replacement["id"]
    assert er.final["state"] == "completed" and er.final["replacements"] == {"support-triage": replacement["id"]}
    cert = er.certificate
    assert [r["version_id"] for r in cert["replacements"]] == [replacement["id"]]
    assert {s["event_id"] for s in cert["steps"]} <= set(cert["audit_proofs"])
    assert er.verified, transcript[-4000:]
    assert "erasure step:" in transcript

    assert_one_trace_per_job(home, result.job_id)

    # `tunegate down` stopped everything it started.
    assert not any((home / "run").glob("*.pid.json"))
    assert os.environ.get("TUNEGATE_HOME") != str(home)
