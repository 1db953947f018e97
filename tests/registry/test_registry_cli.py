"""CLI verbs: submit (job file validation, publish), advise, principals and the token store, approve /
reject / jobs show through the HTTP API, and the demo flow end to end (submit -> scan -> two approvers ->
training.requested)."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from services.registry import cli
from services.registry.adapters.client import RegistryClient
from services.registry.jobfile import JobFileError, load_job_file
from shared.events.envelope import Envelope
from tests.registry.registry_support import World

EXAMPLES = Path(cli.__file__).parent / "examples"
runner = CliRunner()


def tunegate() -> typer.Typer:
    app = typer.Typer()
    cli.register(app)
    return app


def run(*args: str) -> Any:
    return runner.invoke(tunegate(), list(args), catch_exceptions=False)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    return path


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Envelope]:
    sent: list[Envelope] = []
    monkeypatch.setenv("TUNEGATE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("shared.bus.publisher.publish", lambda settings, envelopes: sent.extend(envelopes))
    return sent


@pytest.fixture
def wired(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The CLI talks to the world's API (TestClient) and database."""
    monkeypatch.setenv("TUNEGATE_HOME", str(world.settings.home))
    monkeypatch.setenv("TUNEGATE_DATABASE_URL", world.runtime.db.url)
    monkeypatch.setattr(cli, "open_client", lambda settings: RegistryClient(world.client))
    return world


def test_submit_publishes_job_requested_with_resolved_dataset(published: list[Envelope], dataset: Path) -> None:
    result = run("submit", str(EXAMPLES / "demo_job.yaml"), "--dataset", str(dataset), "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    (envelope,) = published
    assert (envelope.type, envelope.subject, envelope.actor) == ("job.requested", printed["job_id"], "demo-requester")
    assert printed["job_id"].startswith("job_")
    spec_dataset = envelope.payload["spec"]["dataset"]
    assert spec_dataset["uri"] == dataset.resolve().as_uri()
    assert spec_dataset["sha256"] == hashlib.sha256(dataset.read_bytes()).hexdigest()


def test_invalid_job_files_fail_precisely_before_publishing(
    published: list[Envelope], tmp_path: Path, dataset: Path
) -> None:
    placeholder = run("submit", str(EXAMPLES / "demo_job.yaml"))
    assert placeholder.exit_code == 2
    assert "demo_job.yaml: dataset.uri: dataset DATASET_PATH:" in placeholder.stderr
    assert "outside the data roots" in placeholder.stderr  # the placeholder sits in the repo, not in a root
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"requester: x\nbase_model: tiny\ndataset: {{uri: {dataset}}}\n"
        "use_case: {name: n, knowledge_changes: hourly}\nmethod: {kind: rlhf}\n"
    )
    result = run("submit", str(bad))
    assert result.exit_code == 2
    assert f"{bad}: use_case.knowledge_changes: Input should be" in " ".join(result.stderr.split())
    assert "method.kind" in result.stderr
    assert published == []


def test_job_file_checks_sha256_and_relative_paths(tmp_path: Path, dataset: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        f"requester: x\nbase_model: tiny\nuse_case: {{name: n}}\ndataset: {{uri: train.jsonl, sha256: '{'0' * 64}'}}\n"
    )
    with pytest.raises(JobFileError, match=r"dataset\.sha256: dataset sha256 mismatch: .* dataset\.sha256 says 0{64}"):
        load_job_file(job)
    job.write_text("requester: x\nbase_model: tiny\nuse_case: {name: n}\ndataset: {uri: train.jsonl}\n")
    assert load_job_file(job).dataset.uri == dataset.resolve().as_uri()
    job.write_text("requester: x\nbase_model: tiny\nuse_case: {name: n}\ndataset: {uri: 's3://b/k'}\n")
    with pytest.raises(JobFileError, match=r"scheme s3:// is not supported"):
        load_job_file(job)  # nothing in tunegate reads s3://, so the job would only fail at the scanner
    job.write_text("- a list\n")
    with pytest.raises(JobFileError, match="a job file is a YAML mapping"):
        load_job_file(job)


def test_advise_from_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEGATE_HOME", str(tmp_path))
    result = run("advise", "--knowledge-changes", "daily", "--needs-citations", "--examples", "500", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["advice"]["verdict"] == "prefer_rag"
    assert len(body["advice"]["reasons"]) == 2 and "only 500 examples" in body["advice"]["warnings"][0]
    high = json.loads(run("advise", "--domain", "employment", "--consistent-format", "--json").stdout)
    assert (high["risk_tier"]["tier"], high["advice"]["verdict"]) == ("high", "both_with_provider_obligations")
    text = run("advise", "--smaller-model", "--examples", "5000")
    assert "Fine-tuning fits" in text.stdout
    wrong = run("advise", "--knowledge-changes", "hourly")
    assert wrong.exit_code == 2 and "--knowledge-changes" in wrong.stderr


def test_advise_interactive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEGATE_HOME", str(tmp_path))
    answers = "weekly\nn\ny\nn\nn\nn\n4000\ngeneral\n"
    result = runner.invoke(tunegate(), ["advise", "-i", "--json"], input=answers)
    body = json.loads(result.stdout[result.stdout.index("{") :])
    assert body["advice"]["verdict"] == "prefer_rag"
    assert len(body["advice"]["reasons"]) == 2  # weekly changes + erasure


def test_principals_and_token_store(wired: World) -> None:
    created = run("principals", "create", "bob", "--role", "approver", "--role", "auditor", "--json")
    assert created.exit_code == 0, created.output
    token = json.loads(created.stdout)["token"]
    store = wired.settings.home_dir / "cli" / "tokens.json"
    assert json.loads(store.read_text()) == {"bob": token}
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    duplicate = run("principals", "create", "bob", "--role", "approver")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.stderr
    bad_role = run("principals", "create", "eve", "--role", "root")
    assert bad_role.exit_code == 2 and "unknown role(s) root" in bad_role.stderr
    listed = json.loads(run("principals", "list", "--json").stdout)
    assert [(p["name"], p["roles"], p["revoked_at"]) for p in listed] == [("bob", ["approver", "auditor"], None)]
    assert token not in run("principals", "list").stdout
    assert run("principals", "revoke", "bob").exit_code == 0
    assert json.loads(store.read_text()) == {}
    assert json.loads(run("principals", "list", "--json").stdout)[0]["revoked_at"] is not None


@pytest.mark.anyio
async def test_demo_flow_submit_scan_two_approvers_training(
    wired: World, dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[Envelope] = []
    monkeypatch.setattr("shared.bus.publisher.publish", lambda settings, envelopes: sent.extend(envelopes))
    submitted = run("submit", str(EXAMPLES / "demo_job_high_risk.yaml"), "--dataset", str(dataset))
    job_id = submitted.stdout.strip()
    await wired.runtime.deliver(wired.handlers, sent[0])
    await wired.scanned(job_id=job_id, verdict="clean", source_sha256=sent[0].payload["spec"]["dataset"]["sha256"])
    for name in ("demo-approver-1", "demo-approver-2"):
        assert run("principals", "create", name, "--role", "approver").exit_code == 0

    first = run("approve", job_id, "--as", "demo-approver-1", "--comment", "ok")
    assert first.exit_code == 0, first.output
    assert "1/2 approvals" in first.stdout and "awaiting_approval" in first.stdout
    assert "provider obligations" in first.stdout  # the advice is shown to the approver
    assert "verdict clean" in first.stdout  # and the scan summary
    second = run("approve", job_id, "--as", "demo-approver-2")
    assert "2/2 approvals" in second.stdout and "training requested" in second.stdout

    (training,) = wired.runtime.of_type("training.requested")
    assert training.payload["approvers"] == ["demo-approver-1", "demo-approver-2"]
    assert training.payload["seed"] == 11
    shown = json.loads(run("jobs", "show", job_id, "--json").stdout)
    assert [(h["to_state"], h["actor"]) for h in shown["history"]] == [
        ("requested", "demo-requester"),
        ("accepted", "system:registry"),
        ("scanning", "system:registry"),
        ("awaiting_approval", "system:registry"),
        ("approved", "demo-approver-2"),
        ("training", "system:registry"),
    ]
    text = run("jobs", "show", job_id)
    assert "history" in text.stdout and "demo-approver-2" in text.stdout
    listed = json.loads(run("jobs", "list", "--json", "--state", "training").stdout)
    assert [j["id"] for j in listed] == [job_id]


@pytest.mark.anyio
async def test_cli_errors_from_the_api(wired: World) -> None:
    from tests.registry.registry_support import make_spec

    await wired.submit(make_spec())
    run("principals", "create", "alice", "--role", "approver")
    own = run("approve", "job_1", "--as", "alice")
    assert own.exit_code == 1 and "separation of duties" in own.stderr and "HTTP 403" in own.stderr
    nobody = run("approve", "job_1", "--as", "nobody")
    assert nobody.exit_code == 1 and "no token for principal 'nobody'" in nobody.stderr
    no_reason = run("reject", "job_1", "--as", "alice", "--reason", " ")
    assert no_reason.exit_code == 2 and "non-empty reason" in no_reason.stderr
    early = run("reject", "job_1", "--as", "alice", "--reason", "no")
    assert early.exit_code == 1 and "in state 'scanning'" in early.stderr
    assert run("jobs", "list", "--state", "nope").exit_code == 2


def test_submit_without_a_bus_says_so(tmp_path: Path, dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEGATE_HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv("TUNEGATE_REDIS_URL", raising=False)
    result = run("submit", str(EXAMPLES / "demo_job.yaml"), "--dataset", str(dataset))
    assert result.exit_code == 1
    assert "was not submitted: could not publish job.requested: no Redis configured" in " ".join(result.stderr.split())


@pytest.mark.parametrize("job_id", ["../../x", "/etc/cron.d/x", ".hidden", "a/b", "x" * 129, "job\n1"])
def test_submit_refuses_job_ids_that_are_not_plain_names(
    published: list[Envelope], dataset: Path, job_id: str
) -> None:
    result = run("submit", str(EXAMPLES / "demo_job.yaml"), "--dataset", str(dataset), "--job-id", job_id)
    assert result.exit_code == 2 and published == []
    assert "--job-id: job id" in result.stderr and "it becomes a file name" in " ".join(result.stderr.split())


def test_job_file_limits(published: list[Envelope], tmp_path: Path, dataset: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("requester: x\n" + "# padding\n" * 30_000)
    assert "over the limit of 262144 bytes" in run("submit", str(big)).stderr
    long_text = tmp_path / "long.yaml"
    long_text.write_text(
        f"requester: x\nbase_model: tiny\ndataset: {{uri: {dataset}}}\n"
        f"use_case: {{name: n, problem: '{'p' * 8001}'}}\n"
    )
    message = " ".join(run("submit", str(long_text)).stderr.split())
    assert "use_case.problem: String should have at most 8000 characters" in message
    deep = tmp_path / "deep.yaml"
    deep.write_text("requester: x\nlabels: " + "[" * 5000 + "]" * 5000 + "\n")
    nested = run("submit", str(deep))
    assert nested.exit_code == 2 and "nested deeper than 32 levels" in nested.stderr
    assert "Traceback" not in nested.output and "RecursionError" not in nested.output
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text("requester: &r x\nlabels: {a: *r}\n")
    assert "aliases (*r) are not accepted" in run("submit", str(aliases)).stderr
    assert published == []


def test_dataset_flag_is_relative_to_the_working_directory(
    published: list[Envelope], dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(dataset.parent)
    result = run("submit", str(EXAMPLES / "demo_job.yaml"), "--dataset", dataset.name, "--json")
    assert result.exit_code == 0, result.output
    assert published[0].payload["spec"]["dataset"]["uri"] == dataset.resolve().as_uri()
