"""Trainer workers as real processes over a real Redis: SIGKILL mid-job -> another worker resumes from the
last checkpoint and the artefact is recorded once; a cancel on the bus stops a running job."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from shared.datasets import dataset_fingerprint
from shared.events.envelope import Envelope
from shared.events.payloads import MethodSpec, TrainingRequested
from shared.ids import new_job_id
from shared.models.bases import BaseModelInfo
from shared.storage.artifacts import ArtifactStore
from tests.support import ServiceProcess, publish_signed, read_stream, service_rows, wait_for
from tests.trainer.trainer_data import chat_records, write_jsonl

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST_LEASES = {"TUNEGATE_TRAINER_LEASE_TTL_MS": "2000", "TUNEGATE_TRAINER_HEARTBEAT_S": "0.4"}


def share_built_tiny(home: Path, tiny_base: BaseModelInfo) -> None:
    """Point the worker's model cache at the session's built `tiny` (building it again costs a minute)."""
    models = home / "models" / "tiny"
    models.mkdir(parents=True, exist_ok=True)
    (models / tiny_base.path.name).symlink_to(tiny_base.path, target_is_directory=True)


def request(home: Path, tmp_path: Path, max_steps: int, save_steps: int) -> Envelope:
    path = write_jsonl(tmp_path / "train.jsonl", chat_records(24, seed=5))
    ref = ArtifactStore(home / "artifacts").put_file(path)
    job_id = new_job_id()
    payload = TrainingRequested(
        job_id=job_id,
        base_model="tiny",
        method=MethodSpec(kind="sft"),
        dataset=ref,
        fingerprint=dataset_fingerprint(path),
        scan_verdict="clean",
        seed=1,
        hyperparameters={
            "max_steps": max_steps,
            "save_steps": save_steps,
            "logging_steps": 2,
            "batch_size": 4,
            "max_seq_length": 80,
        },
    )
    return Envelope(
        type="training.requested",
        producer="registry",
        actor="system:registry",
        subject=job_id,
        payload=payload.model_dump(mode="json"),
    )


def publish(url: str, *envelopes: Envelope) -> None:
    publish_signed(url, *envelopes)


def events(client: redis.Redis, job_id: str, event_type: str) -> list[Envelope]:
    return [e for e in read_stream(client, "tunegate.training") if e.subject == job_id and e.type == event_type]


def test_sigkill_mid_job_resumes_from_the_last_checkpoint_on_another_worker(
    tunegate_home: Path, redis_url: str, tiny_base: BaseModelInfo, tmp_path: Path
) -> None:
    share_built_tiny(tunegate_home, tiny_base)
    client = redis.Redis.from_url(redis_url)
    job = request(tunegate_home, tmp_path, max_steps=60, save_steps=10)
    first = ServiceProcess("services.trainer", tunegate_home, redis_url, extra_env=FAST_LEASES)
    second = None
    try:
        first.wait_ready()
        publish(redis_url, job)
        wait_for(lambda: events(client, job.subject, "training.checkpointed"), 240, "a first checkpoint")
        first.kill()
        killed_at = max(e.data.step for e in events(client, job.subject, "training.checkpointed"))
        assert not events(client, job.subject, "training.completed")

        second = ServiceProcess("services.trainer", tunegate_home, redis_url, extra_env=FAST_LEASES)
        second.wait_ready()
        wait_for(lambda: events(client, job.subject, "training.completed"), 300, "completion on the second worker")
        completed = events(client, job.subject, "training.completed")
        assert len(completed) == 1
        started = events(client, job.subject, "training.started")
        assert len(started) == 2
        assert started[1].data.resumed_from_step >= killed_at > 0
        assert started[1].data.fencing_token > started[0].data.fencing_token
        assert ArtifactStore(tunegate_home / "artifacts").verify(completed[0].data.artifact)

        rows = service_rows(tunegate_home, "trainer", "SELECT count(*) FROM trainer_jobs WHERE job_id = :j",
                            {"j": job.subject})
        assert rows == [(1,)], "the final artefact is recorded once"
        wait_for(lambda: client.xpending("tunegate.training", "tunegate-trainer")["pending"] == 0, 30, "acked")
    finally:
        first.kill()
        if second is not None:
            second.stop()


def test_cancel_on_the_bus_stops_a_running_job(
    tunegate_home: Path, redis_url: str, tiny_base: BaseModelInfo, tmp_path: Path
) -> None:
    share_built_tiny(tunegate_home, tiny_base)
    client = redis.Redis.from_url(redis_url)
    job = request(tunegate_home, tmp_path, max_steps=2000, save_steps=1000)
    worker = ServiceProcess("services.trainer", tunegate_home, redis_url, extra_env=FAST_LEASES)
    try:
        worker.wait_ready()
        publish(redis_url, job)
        wait_for(lambda: events(client, job.subject, "training.progress"), 240, "training under way")
        cancel = Envelope(
            type="training.cancel.requested",
            producer="registry",
            actor="alice",
            subject=job.subject,
            payload={"job_id": job.subject, "reason": "wrong dataset"},
        )
        publish(redis_url, cancel)
        cancelled = wait_for(lambda: events(client, job.subject, "training.cancelled"), 60, "cancelled")
        assert 0 < cancelled[0].data.at_step < 2000
        assert not events(client, job.subject, "training.completed")
    finally:
        worker.stop()
