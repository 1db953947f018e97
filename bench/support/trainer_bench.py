"""The trainer benches' shared harness: a throwaway home with its own Redis, the `tiny` base, a dataset in the
artefact store and the real training.requested handler, so a bench compares the worker with a plain TRL script
on the same data in the same process (bench/trainer_overhead.py, bench/rlhf_overhead.py)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from services.trainer.adapters.tables import metadata
from services.trainer.bootstrap import build_deps
from services.trainer.engine.run import TrainingJob
from services.trainer.handlers import TrainerDeps, TrainerHandlers
from shared.bus.context import HandlerContext
from shared.config import Settings
from shared.datasets import dataset_fingerprint
from shared.datasets.loaded import load_dataset
from shared.events.envelope import Envelope
from shared.events.payloads import MethodSpec, TrainingRequested
from shared.ids import new_job_id
from shared.models.bases import BaseModelInfo, resolve_base
from shared.stack.redis_server import EmbeddedRedis
from shared.storage.db import Database
from shared.training.hyperparameters import validate_hyperparameters


@dataclass
class WorkerBench:
    root: Path
    base: BaseModelInfo
    deps: TrainerDeps
    handlers: TrainerHandlers
    db: Database
    client: redis.Redis
    data_path: Path
    dataset_ref: Any
    fingerprint: str

    def plain_job(self, method: MethodSpec, hyperparameters: dict[str, Any]) -> TrainingJob:
        """The job a plain script trains, in `root/baseline`."""
        return TrainingJob(job_id="baseline", base=self.base, method=method,
                           params=validate_hyperparameters(hyperparameters, method), seed=0,
                           dataset=load_dataset(self.data_path), workdir=self.root / "baseline")

    def on_torch_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run on the worker's training thread: one OpenMP team, as in a plain script."""
        return self.deps.torch_thread.submit(fn, *args).result()

    def worker_metrics(self, method: MethodSpec, hyperparameters: dict[str, Any], **request: Any) -> dict[str, float]:
        """Run a training.requested for the dataset through the real handler; the training.completed metrics."""
        job_id = new_job_id()
        envelope = Envelope(type="training.requested", producer="bench", actor="bench", subject=job_id,
                            payload=TrainingRequested(
                                job_id=job_id, base_model="tiny", method=method, hyperparameters=hyperparameters,
                                dataset=self.dataset_ref, fingerprint=self.fingerprint, scan_verdict="clean",
                                seed=0, **request).model_dump(mode="json"))

        async def publish(env: Envelope) -> None:
            self.client.xadd(env.stream, {"envelope": env.to_wire()})

        async def keep_alive() -> None:
            return None

        with self.db.transaction() as session:
            ctx = HandlerContext(producer="trainer", default_actor="system:trainer", default_subject=job_id,
                                 envelope=envelope, session=session, keep_alive=keep_alive, publisher=publish)
            asyncio.run(self.handlers.training_requested(envelope.data, ctx))  # type: ignore[arg-type]
            [completed] = ctx.outgoing
        if completed.type != "training.completed":
            raise SystemExit(f"tunegate run did not complete: {completed.payload}")
        return dict(completed.data.metrics)  # type: ignore[attr-defined]


@contextmanager
def worker_bench(models_home: Path | None, write_dataset: Callable[[Path], None]) -> Iterator[WorkerBench]:
    """A fresh bench home; `models_home` reuses a built `tiny` (default: build it in the temp home)."""
    with tempfile.TemporaryDirectory(prefix="tunegate-bench-") as tmp:
        root = Path(tmp)
        settings = Settings(home=root / "home")
        server = EmbeddedRedis(root / "redis")
        server.start()
        client = redis.Redis.from_url(server.url)
        try:
            models_settings = Settings(home=models_home) if models_home else settings
            base = resolve_base("tiny", models_settings)
            data_path = root / "train.jsonl"
            write_dataset(data_path)
            deps = build_deps(settings, client, worker_id="bench-worker")
            deps.resolve_base = lambda name: resolve_base(name, models_settings)
            db = Database(f"sqlite:///{root / 'trainer.sqlite3'}")
            metadata.create_all(db.engine)
            yield WorkerBench(root=root, base=base, deps=deps, handlers=TrainerHandlers(deps), db=db, client=client,
                              data_path=data_path, dataset_ref=deps.artifacts.put_file(data_path),
                              fingerprint=dataset_fingerprint(data_path))
        finally:
            client.close()
            server.stop()
