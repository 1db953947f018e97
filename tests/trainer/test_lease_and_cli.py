"""Lease + fencing over real Redis, and the trainer's CLI commands."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis
import yaml
from typer.testing import CliRunner

from services.cli.demo import JOB_FILE
from services.scanner.entrypoints.demo_dataset import demo_records
from services.trainer.entrypoints.cli import jobs_watch
from shared.datasets import kind_of
from shared.events.envelope import Envelope
from shared.events.payloads import ArtifactRef, MethodSpec, TrainingCompleted, TrainingProgress, TrainingStarted
from shared.events.streams import Stream
from shared.stack.lease import LeaseLost, LeaseManager, lease_key
from shared.training.hyperparameters import check_data_fits, split_seed, validate_hyperparameters


def test_one_holder_at_a_time_and_a_stale_holder_is_fenced_off(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    first, second = LeaseManager(client, "w1", ttl_ms=300), LeaseManager(client, "w2", ttl_ms=5000)
    lease_1 = first.try_acquire("job-x")
    assert lease_1 is not None and lease_1.token == 1
    assert second.try_acquire("job-x") is None
    lease_1.verify()
    assert lease_1.renew()
    time.sleep(0.45)  # w1 stalls past its TTL...
    lease_2 = second.try_acquire("job-x")
    assert lease_2 is not None and lease_2.token == 2
    with pytest.raises(LeaseLost, match="held by 'w2' with token 2"):
        lease_1.verify()  # ...and may no longer checkpoint
    assert not lease_1.renew()
    lease_1.release()  # releasing someone else's lease is a no-op
    assert client.get(lease_key("job-x")) == b"w2"
    lease_2.verify()
    lease_2.release()
    assert client.get(lease_key("job-x")) is None


def test_cancel_flag_round_trip(redis_url: str) -> None:
    leases = LeaseManager(redis.Redis.from_url(redis_url), "w1")
    assert leases.cancel_reason("job-y") is None
    leases.request_cancel("job-y", "requester withdrew")
    assert leases.cancel_reason("job-y") == "requester withdrew"


def test_the_demo_job_fits_the_demo_dataset() -> None:
    """`tunegate demo` submits this job file on the scanner's demo dataset: the trainer must accept both."""
    job = yaml.safe_load(JOB_FILE.read_text(encoding="utf-8"))
    method = MethodSpec.model_validate(job["method"])
    _seed, raw = split_seed(job["hyperparameters"])
    params = validate_hyperparameters(raw, method)
    records = demo_records()
    kind = kind_of(records[0])
    assert kind is not None
    check_data_fits(method, params, kind, len(records))


def test_models_bases_lists_builtin_and_local_bases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEGATE_HOME", str(tmp_path / "home"))
    local = tmp_path / "my-model"
    local.mkdir()
    (local / "config.json").write_text("{}")
    (local / "LICENSE").write_text("MIT License\n...")
    import typer

    from services.registry.entrypoints.models_cli import models_app

    app = typer.Typer()
    app.add_typer(models_app, name="models")
    app.command("status")(lambda: None)  # a second command keeps typer from collapsing the group
    result = CliRunner().invoke(app, ["models", "bases", "--json", "--local", str(local)])
    assert result.exit_code == 0, result.output
    bases = {b["name"]: b for b in json.loads(result.output)}
    assert bases["tiny"]["status"] == "built on first use"
    assert bases["smollm2-135m-instruct"]["licence"] == "Apache-2.0"
    assert bases[str(local)]["licence"] == "MIT License" and bases[str(local)]["sha256"]
    missing = CliRunner().invoke(app, ["models", "bases", "--local", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "not a known base" in missing.output


def test_jobs_watch_follows_progress_until_completed(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    monkeypatch.setenv("TUNEGATE_REDIS_URL", redis_url)
    client = redis.Redis.from_url(redis_url)
    job = "job_watch_1"
    events = [
        ("training.started", TrainingStarted(job_id=job, worker_id="w1", fencing_token=1, total_steps=20)),
        ("training.progress", TrainingProgress(job_id="other", step=5, total_steps=20, loss=9.0)),
        ("training.progress", TrainingProgress(job_id=job, step=10, total_steps=20, loss=0.4321,
                                               tokens_per_s=1234.0, eta_s=3.0)),
        ("training.completed", TrainingCompleted(
            job_id=job, artifact=ArtifactRef(uri="cas://sha256/" + "a" * 64, sha256="a" * 64),
            base_model="tiny", method=MethodSpec(), data_fingerprint="b" * 64)),
    ]
    for event_type, payload in events:
        envelope = Envelope(type=event_type, producer="trainer", actor="system:trainer",
                            subject=payload.job_id, payload=payload.model_dump(mode="json"))
        client.xadd(Stream.TRAINING.value, {"envelope": envelope.to_wire()})
    app = typer.Typer()
    app.command()(jobs_watch)
    result = CliRunner().invoke(app, [job, "--timeout", "20"])
    assert result.exit_code == 0, result.output
    assert "completed" in result.output and "cas://sha256/" + "a" * 64 in result.output
