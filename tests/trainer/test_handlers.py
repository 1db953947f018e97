"""The training.requested / training.cancel.requested handlers over a real SQLite database and real Redis."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from services.trainer.adapters.tables import metadata, trainer_jobs
from services.trainer.bootstrap import build_deps
from services.trainer.handlers import TrainerHandlers
from shared.bus.context import HandlerContext
from shared.config import Settings
from shared.datasets import dataset_fingerprint
from shared.evaluation.holdout import HeldOut, choose_held_out
from shared.events.envelope import Envelope
from shared.events.payloads import ArtifactRef, MethodSpec, TrainingCancelRequested, TrainingRequested
from shared.ids import new_job_id
from shared.models.bases import BaseModelInfo, resolve_base
from shared.stack.lease import fence_key, lease_key
from shared.storage.db import Database
from tests.trainer.trainer_data import chat_records, write_jsonl


@dataclass
class Harness:
    handlers: TrainerHandlers
    db: Database
    client: redis.Redis
    settings: Settings
    published: list[Envelope] = field(default_factory=list)
    on_publish: Any = None

    def request(self, job_id: str, dataset: ArtifactRef, fingerprint: str, **overrides: Any) -> Envelope:
        payload = TrainingRequested(
            job_id=job_id, base_model="tiny", method=MethodSpec(kind="sft"), dataset=dataset,
            fingerprint=fingerprint, scan_verdict="clean", seed=3,
            hyperparameters={"max_steps": 10, "save_steps": 5, "logging_steps": 5, "max_seq_length": 80},
        ).model_dump(mode="json")
        payload.update(overrides)
        return Envelope(type="training.requested", producer="registry", actor="system:registry",
                        subject=job_id, payload=payload)

    def deliver(self, envelope: Envelope) -> list[Envelope]:
        """Run the handler in one transaction, as the bus runtime does; return what it emitted."""

        async def publish(env: Envelope) -> None:
            self.published.append(env)
            if self.on_publish is not None:
                await self.on_publish(env)

        async def keep_alive() -> None:
            return None

        with self.db.transaction() as session:
            ctx = HandlerContext(producer="trainer", default_actor="system:trainer",
                                 default_subject=envelope.subject, causation_id=envelope.event_id,
                                 envelope=envelope, session=session, settings=self.settings,
                                 keep_alive=keep_alive, publisher=publish)
            handler = {"training.requested": self.handlers.training_requested,
                       "training.cancel.requested": self.handlers.cancel_requested}[envelope.type]
            asyncio.run(handler(envelope.data, ctx))
            return list(ctx.outgoing)


@pytest.fixture
def harness(tmp_path: Path, redis_url: str, tiny_base: BaseModelInfo) -> Harness:
    return build_harness(tmp_path, redis_url, tiny_base)


def build_harness(tmp_path: Path, redis_url: str, tiny_base: BaseModelInfo) -> Harness:
    # The lease outlives a starved heartbeat: at 1.5 s these tests lost it (correctly stopping without
    # publishing) whenever 2 shared cores ran at load ~15. No test here waits for a lease to expire.
    lease_ttl_ms = 10_000
    settings = Settings(home=tmp_path / "home")
    client = redis.Redis.from_url(redis_url)
    deps = build_deps(settings, client, worker_id="worker-a", lease_ttl_ms=lease_ttl_ms, heartbeat_s=0.2)
    deps.resolve_base = lambda name: tiny_base if name == "tiny" else resolve_base(name, settings)
    db = Database(f"sqlite:///{tmp_path / 'trainer.sqlite3'}")
    metadata.create_all(db.engine)
    return Harness(TrainerHandlers(deps), db, client, settings)


def stored_dataset(harness: Harness, tmp_path: Path, n: int = 16) -> tuple[ArtifactRef, str]:
    path = write_jsonl(tmp_path / "train.jsonl", chat_records(n, seed=11))
    return harness.handlers.deps.artifacts.put_file(path), dataset_fingerprint(path)


@pytest.mark.slow
def test_a_job_trains_publishes_live_events_and_is_recorded_once(harness: Harness, tmp_path: Path) -> None:
    job_id = new_job_id()
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    request = harness.request(job_id, dataset, fingerprint)
    [completed] = harness.deliver(request)

    assert [e.type for e in harness.published] == [
        "training.started", "training.progress", "training.checkpointed", "training.progress",
        "training.checkpointed",
    ]
    assert all(e.subject == job_id for e in harness.published)
    started = harness.published[0].data
    assert started.worker_id == "worker-a" and started.fencing_token == 1 and started.total_steps == 10
    checkpoint = harness.published[2].data.checkpoint
    assert harness.handlers.deps.artifacts.verify(checkpoint)

    assert completed.type == "training.completed"
    result: Any = completed.data
    store = harness.handlers.deps.artifacts
    store.verify(result.artifact)
    assert store.verify(result.loss_curve).read_bytes().startswith(b"\x89PNG")
    assert result.data_fingerprint == fingerprint and result.seed == 3
    assert result.base_model_sha256 == harness.handlers.deps.resolve_base("tiny").sha256
    assert result.hyperparameters["max_steps"] == 10 and result.hyperparameters["lora_r"] == 16
    assert {"torch", "transformers", "peft", "trl"} <= set(result.library_versions)
    assert result.metrics["steps"] == 10 and result.epsilon is None
    assert harness.client.get(lease_key(job_id)) is None  # released for the next holder
    # The evaluation split: 10% of 16 records held out (seeded), named in training.completed with the data.
    assert result.dataset == dataset and result.evaluation.holdout_fraction == 0.1
    held = HeldOut.from_json(store.verify(result.held_out).read_bytes())
    assert held.indices == choose_held_out(16, 0.1, seed=3) and len(held.indices) == 1
    assert (held.record_count, held.data_fingerprint, held.job_id) == (16, fingerprint, job_id)
    assert result.metrics["records"] == 15, "the held-out record is not trained on"

    # A redelivery (or a duplicate request) finds the recorded outcome and emits nothing new.
    harness.published.clear()
    assert harness.deliver(harness.request(job_id, dataset, fingerprint)) == []
    assert harness.published == []
    with harness.db.transaction() as session:
        rows = session.execute(select(trainer_jobs).where(trainer_jobs.c.job_id == job_id)).all()
    assert len(rows) == 1 and rows[0].artifact_sha256 == result.artifact.sha256
    assert rows[0].event_id == completed.event_id


def test_data_other_than_what_was_scanned_is_refused(harness: Harness, tmp_path: Path) -> None:
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    wrong_fingerprint = "0" * 64
    [failed] = harness.deliver(harness.request(new_job_id(), dataset, wrong_fingerprint))
    assert failed.type == "training.failed"
    assert "fingerprint mismatch" in failed.data.reason and fingerprint in failed.data.reason

    tampered = ArtifactRef(uri=dataset.uri, sha256="f" * 64)
    [failed] = harness.deliver(harness.request(new_job_id(), tampered, fingerprint))
    assert "changed since the scan" in failed.data.reason

    missing = ArtifactRef(uri="cas://sha256/" + "a" * 64, sha256="a" * 64)
    [failed] = harness.deliver(harness.request(new_job_id(), missing, fingerprint))
    assert "dataset not found" in failed.data.reason
    assert harness.published == []  # nothing was started


def test_blocked_verdict_cannot_even_be_requested() -> None:
    with pytest.raises(ValueError, match="scan_verdict"):
        TrainingRequested(job_id="j", base_model="tiny", method=MethodSpec(), fingerprint="0" * 64,
                          dataset=ArtifactRef(uri="cas://x", sha256="0" * 64),
                          scan_verdict="blocked")  # type: ignore[arg-type]


def test_a_method_that_does_not_fit_the_data_fails_with_the_reason(harness: Harness, tmp_path: Path) -> None:
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    [failed] = harness.deliver(harness.request(new_job_id(), dataset, fingerprint,
                                               method={"kind": "dpo", "adapter": "lora"}))
    assert "method dpo needs preference records, the dataset holds chat records" in failed.data.reason


def test_cancel_before_start_answers_the_request_with_cancelled(harness: Harness, tmp_path: Path) -> None:
    job_id = new_job_id()
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    harness.deliver(Envelope(type="training.cancel.requested", producer="registry", actor="alice",
                             subject=job_id, payload=TrainingCancelRequested(job_id=job_id,
                                                                             reason="wrong data").model_dump()))
    [cancelled] = harness.deliver(harness.request(job_id, dataset, fingerprint))
    assert cancelled.type == "training.cancelled"
    assert cancelled.data.at_step == 0 and cancelled.data.reason == "wrong data"


@pytest.mark.slow
def test_cancel_during_training_stops_at_the_next_step(harness: Harness, tmp_path: Path) -> None:
    job_id = new_job_id()
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    cancel = Envelope(type="training.cancel.requested", producer="registry", actor="alice", subject=job_id,
                      payload=TrainingCancelRequested(job_id=job_id, reason="stop").model_dump())
    cancel_ctx = HandlerContext(producer="trainer", default_actor="system:trainer", envelope=cancel)

    async def cancel_on_first_progress(env: Envelope) -> None:
        if env.type == "training.progress" and env.data.step == 2:  # type: ignore[attr-defined]
            await harness.handlers.cancel_requested(cancel.data, cancel_ctx)

    harness.on_publish = cancel_on_first_progress
    [cancelled] = harness.deliver(harness.request(job_id, dataset, fingerprint, hyperparameters={
        "max_steps": 200, "logging_steps": 2, "save_steps": 1000, "max_seq_length": 80}))
    # The flag is polled every cancel_poll_s (0.25 s) off the training thread: a few steps may pass.
    assert cancelled.type == "training.cancelled" and 2 < cancelled.data.at_step < 200
    assert cancelled.data.reason == "stop"
    assert "training.completed" not in [e.type for e in harness.published]


def test_a_job_held_by_another_live_worker_is_left_to_it(harness: Harness, tmp_path: Path) -> None:
    job_id = new_job_id()
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    harness.client.set(lease_key(job_id), "worker-b", px=60_000)
    harness.client.set(fence_key(job_id), 4)
    assert harness.deliver(harness.request(job_id, dataset, fingerprint)) == []
    assert harness.published == []
    assert harness.client.get(lease_key(job_id)) == b"worker-b"


class SimulatedCrash(Exception):
    """Stands in for SIGKILL: escapes the handler, so nothing is recorded and the entry stays pending."""


@pytest.mark.slow
def test_a_redelivered_job_resumes_from_the_last_checkpoint_with_a_new_token(harness: Harness,
                                                                            tmp_path: Path) -> None:
    job_id = new_job_id()
    dataset, fingerprint = stored_dataset(harness, tmp_path)

    async def die_after_first_checkpoint(env: Envelope) -> None:
        if env.type == "training.checkpointed":
            raise SimulatedCrash("worker killed")

    harness.on_publish = die_after_first_checkpoint
    request = harness.request(job_id, dataset, fingerprint)
    with pytest.raises(SimulatedCrash):
        harness.deliver(request)
    with harness.db.transaction() as session:
        assert session.execute(select(trainer_jobs)).all() == []

    harness.on_publish = None
    harness.published.clear()
    [completed] = harness.deliver(request)  # the reclaimer re-delivers the same entry
    started = harness.published[0].data
    assert started.resumed_from_step == 5 and started.fencing_token == 2
    assert [e.data.step for e in harness.published if e.type == "training.progress"] == [10]
    assert completed.type == "training.completed" and completed.data.metrics["steps"] == 10


def test_rlhf_without_its_reward_models_artefact_is_refused(harness: Harness, tmp_path: Path) -> None:
    dataset, fingerprint = stored_dataset(harness, tmp_path)
    method = {"kind": "rlhf", "rlhf": {"reward_model_version": "order-rm.v1"}}
    [failed] = harness.deliver(harness.request(new_job_id(), dataset, fingerprint, method=method))
    assert failed.type == "training.failed"
    assert "order-rm.v1: training.requested carries no reward-model artefact" in failed.data.reason
    missing = ArtifactRef(uri="cas://sha256/" + "a" * 64, sha256="a" * 64)
    [failed] = harness.deliver(harness.request(new_job_id(), dataset, fingerprint, method=method,
                                               reward_model=missing.model_dump()))
    assert failed.type == "training.failed" and "reward model order-rm.v1" in failed.data.reason
    assert "unusable" in failed.data.reason
