"""CLI verbs: signed submit (job file validation, requester = signer, publish), advise, principals through
the API with the admin token, approve / reject / jobs show / cancel through the HTTP API, and the demo flow
end to end (principals -> signed submit -> scan -> two approvers -> training.requested)."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

import services.registry
from services.registry.adapters.client import RegistryClient
from services.registry.adapters.credentials import CredentialStore
from services.registry.entrypoints import cli, cli_common
from services.registry.jobfile import JobFileError, load_job_file
from shared.config import Settings
from shared.events.envelope import Envelope
from shared.security.keys import key_id_for
from shared.security.signing import verify_envelope
from tests.registry.registry_support import World, make_spec

EXAMPLES = Path(services.registry.__file__).parent / "examples"
runner = CliRunner()


def tunegate() -> typer.Typer:
    app = typer.Typer()
    cli.register(app)
    return app


def run(*args: str) -> Any:
    return runner.invoke(tunegate(), list(args), catch_exceptions=False)


def capture_publish(monkeypatch: pytest.MonkeyPatch) -> list[Envelope]:
    sent: list[Envelope] = []

    def fake(settings: Settings, envelopes: list[Envelope], signer: Any) -> list[Envelope]:
        signed = [signer.sign(envelope) for envelope in envelopes]
        sent.extend(signed)
        return signed

    monkeypatch.setattr("shared.bus.publisher.publish", fake)
    return sent


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    return path


@pytest.fixture
def requester_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Ed25519PrivateKey:
    """A local home whose credentials hold demo-requester's signing key (no registry needed to submit)."""
    monkeypatch.setenv("TUNEGATE_HOME", str(tmp_path / "home"))
    key = Ed25519PrivateKey.generate()
    CredentialStore(Settings()).save_signing_key("demo-requester", key)
    return key


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch, requester_key: Ed25519PrivateKey) -> list[Envelope]:
    return capture_publish(monkeypatch)


@pytest.fixture
def wired(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The CLI talks to the world's API (TestClient); the first admin's token is stored locally."""
    monkeypatch.setenv("TUNEGATE_HOME", str(world.settings.home))
    monkeypatch.delenv("TUNEGATE_TOKEN", raising=False)
    monkeypatch.setattr(cli_common, "open_client", lambda settings, token: RegistryClient(world.client, token))
    CredentialStore(world.settings).save_admin_token(world.admin())
    return world


def test_submit_signs_job_requested_as_the_principal(
    published: list[Envelope], requester_key: Ed25519PrivateKey, dataset: Path
) -> None:
    result = run(
        "submit", str(EXAMPLES / "demo_job.yaml"), "--as", "demo-requester", "--dataset", str(dataset), "--json"
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    (envelope,) = published
    assert (envelope.type, envelope.subject) == ("job.requested", printed["job_id"])
    assert (envelope.producer, envelope.actor) == ("principal:demo-requester", "demo-requester")
    assert envelope.payload["spec"]["requester"] == "demo-requester"
    public = requester_key.public_key()
    verify_envelope(envelope, lambda identity, kid: public if kid == key_id_for(public) else None)
    assert printed["job_id"].startswith("job_") and printed["event_id"] == envelope.event_id
    spec_dataset = envelope.payload["spec"]["dataset"]
    assert spec_dataset["uri"] == dataset.resolve().as_uri()
    assert spec_dataset["sha256"] == hashlib.sha256(dataset.read_bytes()).hexdigest()


def test_submit_refuses_a_file_naming_another_requester_and_a_principal_without_key(
    published: list[Envelope], tmp_path: Path, dataset: Path
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(
        (EXAMPLES / "demo_job.yaml")
        .read_text()
        .replace("base_model: tiny", "requester: someone-else\nbase_model: tiny")
    )
    named = run("submit", str(other), "--as", "demo-requester", "--dataset", str(dataset))
    assert named.exit_code == 2
    assert "the file names 'someone-else' but the job is submitted as 'demo-requester'" in " ".join(
        named.stderr.split()
    )
    keyless = run("submit", str(EXAMPLES / "demo_job.yaml"), "--as", "bob", "--dataset", str(dataset))
    assert keyless.exit_code == 1 and "no signing key for principal 'bob'" in " ".join(keyless.stderr.split())
    bad_name = run("submit", str(EXAMPLES / "demo_job.yaml"), "--as", "../x", "--dataset", str(dataset))
    assert bad_name.exit_code == 2 and "principal name" in bad_name.stderr
    assert published == []


def test_invalid_job_files_fail_precisely_before_publishing(
    published: list[Envelope], tmp_path: Path, dataset: Path
) -> None:
    placeholder = run("submit", str(EXAMPLES / "demo_job.yaml"), "--as", "demo-requester")
    assert placeholder.exit_code == 2
    assert "demo_job.yaml: dataset.uri: dataset DATASET_PATH:" in placeholder.stderr
    assert "outside the data roots" in placeholder.stderr  # the placeholder sits in the repo, not in a root
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"base_model: tiny\ndataset: {{uri: {dataset}}}\n"
        "use_case: {name: n, knowledge_changes: hourly}\nmethod: {kind: ppo}\n"
    )
    result = run("submit", str(bad), "--as", "demo-requester")
    assert result.exit_code == 2
    assert f"{bad}: use_case.knowledge_changes: Input should be" in " ".join(result.stderr.split())
    assert "method.kind" in result.stderr
    assert published == []


def test_job_file_checks_sha256_and_relative_paths(tmp_path: Path, dataset: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(f"base_model: tiny\nuse_case: {{name: n}}\ndataset: {{uri: train.jsonl, sha256: '{'0' * 64}'}}\n")
    with pytest.raises(JobFileError, match=r"dataset\.sha256: dataset sha256 mismatch: .* dataset\.sha256 says 0{64}"):
        load_job_file(job, requester="x")
    job.write_text("base_model: tiny\nuse_case: {name: n}\ndataset: {uri: train.jsonl}\n")
    assert load_job_file(job, requester="x").dataset.uri == dataset.resolve().as_uri()
    job.write_text("requester: x\nbase_model: tiny\nuse_case: {name: n}\ndataset: {uri: 's3://b/k'}\n")
    with pytest.raises(JobFileError, match=r"scheme s3:// is not supported"):
        load_job_file(job, requester="x")  # nothing in tunegate reads s3://, so the job would only fail at the scanner
    job.write_text("- a list\n")
    with pytest.raises(JobFileError, match="a job file is a YAML mapping"):
        load_job_file(job, requester="x")


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
    rlhf = json.loads(run("advise", "--consistent-format", "--examples", "5000", "--method", "rlhf", "--json").stdout)
    assert [w[:40] for w in rlhf["advice"]["warnings"]] == [
        "RLHF costs more than DPO: DPO learns fro", "RLHF is worth its cost when the reward m"]
    assert run("advise", "--method", "ppo").exit_code == 2


def test_advise_interactive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEGATE_HOME", str(tmp_path))
    answers = "weekly\nn\ny\nn\nn\nn\n4000\ngeneral\n"
    result = runner.invoke(tunegate(), ["advise", "-i", "--json"], input=answers)
    body = json.loads(result.stdout[result.stdout.index("{") :])
    assert body["advice"]["verdict"] == "prefer_rag"
    assert len(body["advice"]["reasons"]) == 2  # weekly changes + erasure


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_principals_through_the_api_with_local_credentials(wired: World) -> None:
    created = run("principals", "create", "bob", "--role", "approver", "--role", "auditor", "--json")
    assert created.exit_code == 0, created.output
    body = json.loads(created.stdout)
    folder = wired.settings.home_dir / "credentials" / "bob"
    assert (folder / "token").read_text() == body["token"]
    assert not (folder / "signing.key").exists(), "approvers sign nothing: no key unless asked"
    assert mode(folder) == 0o700 and mode(folder / "token") == 0o600
    (created_event,) = wired.runtime.of_type("principal.created")
    assert created_event.payload["name"] == "bob" and created_event.actor == "root"
    assert body["token"] not in json.dumps([e.payload for e in wired.runtime.published])

    requester = json.loads(run("principals", "create", "rita", "--role", "requester", "--json").stdout)
    key_file = wired.settings.home_dir / "credentials" / "rita" / "signing.key"
    assert mode(key_file) == 0o600 and key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert requester["keys"][0]["key_id"] == wired.runtime.of_type("principal.created")[-1].payload["key_id"]

    duplicate = run("principals", "create", "bob", "--role", "approver")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.stderr
    bad_role = run("principals", "create", "eve", "--role", "root")
    assert bad_role.exit_code == 2 and "unknown role(s) root" in bad_role.stderr
    listed = json.loads(run("principals", "list", "--json").stdout)
    assert sorted((p["name"], p["roles"], p["revoked_at"]) for p in listed) == [
        ("bob", ["approver", "auditor"], None),
        ("rita", ["requester"], None),
        ("root", ["admin"], None),
    ]
    assert body["token"] not in run("principals", "list").stdout

    rotated = json.loads(run("principals", "rotate", "rita", "--json").stdout)
    assert [k["retired_at"] is None for k in rotated["keys"]] == [False, True], "old key kept, retired"
    assert (wired.settings.home_dir / "credentials" / "rita" / "token").read_text() == rotated["token"]
    assert wired.runtime.of_type("principal.rotated")[0].payload["key_id"] == rotated["keys"][1]["key_id"]

    assert run("principals", "revoke", "bob", "--reason", "left the team").exit_code == 0
    assert not (folder / "token").exists()
    assert wired.runtime.of_type("principal.revoked")[0].payload == {
        "name": "bob",
        "revoked_by": "root",
        "reason": "left the team",
    }
    bob_token = body["token"]
    assert wired.get("/jobs", bob_token).status_code == 401


def test_principals_need_an_admin_token(wired: World, monkeypatch: pytest.MonkeyPatch) -> None:
    auditor = wired.principal("ada", "auditor")
    refused = run("principals", "create", "x", "--role", "approver", "--token", auditor)
    assert refused.exit_code == 1 and "needs the 'admin' role" in refused.stderr and "HTTP 403" in refused.stderr
    monkeypatch.setenv("TUNEGATE_TOKEN", auditor)
    assert "root" in {p["name"] for p in json.loads(run("principals", "list", "--json").stdout)}
    monkeypatch.delenv("TUNEGATE_TOKEN")
    (wired.settings.home_dir / "credentials" / "admin.token").unlink()
    missing = run("principals", "list")
    assert missing.exit_code == 1 and "tunegate admin bootstrap" in " ".join(missing.stderr.split())


@pytest.mark.anyio
async def test_demo_flow_principals_signed_submit_scan_two_approvers_training(
    wired: World, dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = capture_publish(monkeypatch)
    for name, role in (
        ("demo-requester", "requester"),
        ("demo-approver-1", "approver"),
        ("demo-approver-2", "approver"),
    ):
        assert run("principals", "create", name, "--role", role).exit_code == 0
    submitted = run(
        "submit", str(EXAMPLES / "demo_job_high_risk.yaml"), "--as", "demo-requester", "--dataset", str(dataset)
    )
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.strip()
    await wired.runtime.deliver(wired.handlers, sent[0])
    await wired.scanned(job_id=job_id, verdict="clean", source_sha256=sent[0].payload["spec"]["dataset"]["sha256"])

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
    mine = json.loads(run("jobs", "list", "--json", "--as", "demo-requester").stdout)
    assert [j["id"] for j in mine] == [job_id]

    taken = run(
        "submit",
        str(EXAMPLES / "demo_job.yaml"),
        "--as",
        "demo-requester",
        "--dataset",
        str(dataset),
        "--job-id",
        job_id,
    )
    assert taken.exit_code == 1 and f"job id {job_id} is already taken" in taken.stderr
    assert len(sent) == 1

    cancelled = run("jobs", "cancel", job_id, "--as", "demo-requester", "--reason", "wrong dataset", "--json")
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cancelled.stdout)["training_cancel_requested"] is True
    (cancel,) = wired.runtime.of_type("training.cancel.requested")
    assert (cancel.subject, cancel.actor, cancel.payload["reason"]) == (job_id, "demo-requester", "wrong dataset")
    again = run("jobs", "cancel", job_id, "--as", "demo-requester")
    assert again.exit_code == 1 and "already requested" in again.stderr


@pytest.mark.anyio
async def test_cli_errors_from_the_api(wired: World) -> None:
    await wired.submit(make_spec())
    run("principals", "create", "alice-approver", "--role", "approver")
    nobody = run("approve", "job_1", "--as", "nobody")
    assert nobody.exit_code == 1 and "no token for principal 'nobody'" in nobody.stderr
    no_reason = run("reject", "job_1", "--as", "alice-approver", "--reason", " ")
    assert no_reason.exit_code == 2 and "non-empty reason" in no_reason.stderr
    early = run("reject", "job_1", "--as", "alice-approver", "--reason", "no")
    assert early.exit_code == 1 and "in state 'scanning'" in early.stderr
    assert run("jobs", "list", "--state", "nope").exit_code == 2


def test_submit_without_a_bus_says_so(
    requester_key: Ed25519PrivateKey, dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TUNEGATE_REDIS_URL", raising=False)
    result = run("submit", str(EXAMPLES / "demo_job.yaml"), "--as", "demo-requester", "--dataset", str(dataset))
    assert result.exit_code == 1
    assert "was not submitted: could not publish job.requested: no Redis configured" in " ".join(result.stderr.split())


@pytest.mark.parametrize("job_id", ["../../x", "/etc/cron.d/x", ".hidden", "a/b", "x" * 129, "job\n1"])
def test_submit_refuses_job_ids_that_are_not_plain_names(
    published: list[Envelope], dataset: Path, job_id: str
) -> None:
    job = str(EXAMPLES / "demo_job.yaml")
    result = run("submit", job, "--as", "demo-requester", "--dataset", str(dataset), "--job-id", job_id)
    assert result.exit_code == 2 and published == []
    assert "--job-id: job id" in result.stderr and "it becomes a file name" in " ".join(result.stderr.split())


def test_job_file_limits(published: list[Envelope], tmp_path: Path, dataset: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("requester: x\n" + "# padding\n" * 30_000)
    assert "over the limit of 262144 bytes" in run("submit", str(big), "--as", "demo-requester").stderr
    long_text = tmp_path / "long.yaml"
    long_text.write_text(
        f"base_model: tiny\ndataset: {{uri: {dataset}}}\n"
        f"use_case: {{name: n, problem: '{'p' * 8001}'}}\n"
    )
    message = " ".join(run("submit", str(long_text), "--as", "demo-requester").stderr.split())
    assert "use_case.problem: String should have at most 8000 characters" in message
    deep = tmp_path / "deep.yaml"
    deep.write_text("requester: x\nlabels: " + "[" * 5000 + "]" * 5000 + "\n")
    nested = run("submit", str(deep), "--as", "demo-requester")
    assert nested.exit_code == 2 and "nested deeper than 32 levels" in nested.stderr
    assert "Traceback" not in nested.output and "RecursionError" not in nested.output
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text("base_model: &r x\nlabels: {a: *r}\n")
    assert "aliases (*r) are not accepted" in run("submit", str(aliases), "--as", "demo-requester").stderr
    assert published == []


def test_dataset_flag_is_relative_to_the_working_directory(
    published: list[Envelope], dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(dataset.parent)
    job = str(EXAMPLES / "demo_job.yaml")
    result = run("submit", job, "--as", "demo-requester", "--dataset", dataset.name, "--json")
    assert result.exit_code == 0, result.output
    assert published[0].payload["spec"]["dataset"]["uri"] == dataset.resolve().as_uri()
