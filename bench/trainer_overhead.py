"""Training throughput through a tunegate worker versus a plain TRL script, same data, model and settings.

    .venv/bin/python bench/trainer_overhead.py [--steps 120] [--rounds 3] [--records 256] [--seq 128]

The tunegate side is the real `training.requested` handler: lease + fencing token in Redis, a cancel check
every step, training.progress / training.checkpointed published to the Redis stream, checkpoint manifests
in the artefact store, heartbeats on the event loop. The baseline is SFTTrainer on the same pre-tokenised
records with the same SFTConfig values and checkpoint cadence, and no callbacks, on the OS thread the
worker trains on (OpenMP keeps one thread team per calling thread). Both count tokens the same way
(trainer.state.num_input_tokens_seen over the trainer.train() wall time). Rounds alternate the
baseline/tunegate order after one uncounted warm-up, so drift on a shared machine hits both; the ratio
is the median of per-round ratios.
Target: overhead <= 3% (ratio >= 0.97)."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from services.trainer.adapters.tables import metadata
from services.trainer.bootstrap import build_deps
from services.trainer.engine.data import tokenise
from services.trainer.engine.models import load_model, load_tokenizer
from services.trainer.engine.plain import common_args
from services.trainer.engine.run import TrainingJob
from services.trainer.handlers import TrainerHandlers
from shared.bus.context import HandlerContext
from shared.config import Settings
from shared.datasets import dataset_fingerprint
from shared.datasets.loaded import load_dataset
from shared.events.envelope import Envelope
from shared.events.payloads import MethodSpec, TrainingRequested
from shared.ids import new_job_id
from shared.models.bases import configure_offline, resolve_base
from shared.stack.redis_server import EmbeddedRedis
from shared.storage.db import Database
from shared.training.hyperparameters import validate_hyperparameters


def write_dataset(path: Path, n: int) -> None:
    import random

    rng = random.Random(0)
    names = ["Ada Berg", "Ben Costa", "Chloe Dubois", "David Evans", "Elena Fischer"]
    cities = ["Lisbon", "Berlin", "Paris", "Oslo"]
    with path.open("w") as handle:
        for _ in range(n):
            name, city, qty = rng.choice(names), rng.choice(cities), rng.randint(1, 9)
            note = " ".join(rng.choice(["urgent", "gift", "office", "repeat", "bulk"]) for _ in range(12))
            prompt = f"Extract the order as JSON: {name} from {city} ordered {qty} lamps. Notes: {note}."
            answer = json.dumps({"name": name, "city": city, "item": "lamp", "quantity": qty, "notes": note})
            handle.write(json.dumps({"messages": [{"role": "user", "content": prompt},
                                                  {"role": "assistant", "content": answer}]}) + "\n")


def baseline(job: TrainingJob, out: Path, steps: int) -> tuple[float, float]:
    """A plain TRL script: SFTTrainer, the same args, no tunegate code in the loop."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from trl import SFTConfig, SFTTrainer

    tokenizer = load_tokenizer(job.base)
    rows = tokenise(tokenizer, job.dataset.kind, job.dataset.records, job.params.max_seq_length).rows
    model = load_model(job.base, job.seed)
    p = job.params
    model = get_peft_model(model, LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout,
                                             target_modules=list(p.lora_target_modules), task_type="CAUSAL_LM"))
    trainer = SFTTrainer(model=model, args=SFTConfig(completion_only_loss=True, packing=False,
                                                     **common_args(job, out, steps)),
                         train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    started = time.monotonic()
    trainer.train()
    return float(trainer.state.num_input_tokens_seen), time.monotonic() - started


def worker_metrics(handlers: TrainerHandlers, db: Database, client: redis.Redis,
                   request: Envelope) -> dict[str, float]:
    """Run `request` through the real training.requested handler; the training.completed metrics."""
    async def publish(env: Envelope) -> None:
        client.xadd(env.stream, {"envelope": env.to_wire()})

    async def keep_alive() -> None:
        return None

    with db.transaction() as session:
        ctx = HandlerContext(producer="trainer", default_actor="system:trainer", default_subject=request.subject,
                             envelope=request, session=session, keep_alive=keep_alive, publisher=publish)
        asyncio.run(handlers.training_requested(request.data, ctx))  # type: ignore[arg-type]
        [completed] = ctx.outgoing
    if completed.type != "training.completed":
        raise SystemExit(f"tunegate run did not complete: {completed.payload}")
    return dict(completed.data.metrics)  # type: ignore[attr-defined]


def through_worker(handlers: TrainerHandlers, db: Database, client: redis.Redis,
                   request: Envelope) -> tuple[float, float]:
    metrics = worker_metrics(handlers, db, client, request)
    return metrics["tokens_seen"], metrics["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=256)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--models-home", type=Path, default=None,
                        help="A TUNEGATE_HOME whose built `tiny` to reuse (default: build it in a temp home).")
    args = parser.parse_args()
    configure_offline()

    with tempfile.TemporaryDirectory(prefix="tunegate-bench-") as tmp:
        root = Path(tmp)
        settings = Settings(home=root / "home")
        server = EmbeddedRedis(root / "redis")
        server.start()
        client = redis.Redis.from_url(server.url)
        try:
            models_settings = Settings(home=args.models_home) if args.models_home else settings
            base = resolve_base("tiny", models_settings)
            data_path = root / "train.jsonl"
            write_dataset(data_path, args.records)
            hyper = {"max_steps": args.steps, "batch_size": 8, "max_seq_length": args.seq, "logging_steps": 10,
                     "save_steps": 50, "learning_rate": 2e-3}
            method = MethodSpec(kind="sft", adapter="lora")
            job = TrainingJob(job_id="baseline", base=base, method=method,
                              params=validate_hyperparameters(hyper, method), seed=0,
                              dataset=load_dataset(data_path), workdir=root / "baseline")
            deps = build_deps(settings, client, worker_id="bench-worker")
            deps.resolve_base = lambda name: resolve_base(name, models_settings)
            handlers = TrainerHandlers(deps)
            db = Database(f"sqlite:///{root / 'trainer.sqlite3'}")
            metadata.create_all(db.engine)
            dataset_ref = deps.artifacts.put_file(data_path)
            fingerprint = dataset_fingerprint(data_path)

            def run_plain() -> tuple[float, float]:
                shutil.rmtree(root / "baseline", ignore_errors=True)
                # Same OS thread as the worker's training: one OpenMP team, as in a plain script.
                return deps.torch_thread.submit(baseline, job, root / "baseline", args.steps).result()

            def run_worker() -> tuple[float, float]:
                job_id = new_job_id()
                request = Envelope(type="training.requested", producer="bench", actor="bench", subject=job_id,
                                   payload=TrainingRequested(
                                       job_id=job_id, base_model="tiny", method=method, hyperparameters=hyper,
                                       dataset=dataset_ref, fingerprint=fingerprint, scan_verdict="clean",
                                       seed=0).model_dump(mode="json"))
                return through_worker(handlers, db, client, request)

            run_plain()  # warm-up (allocator, OpenMP team, file cache); not counted
            ratios, plain_rates, worker_rates = [], [], []
            for round_no in range(1, args.rounds + 1):
                # Alternate which side goes first so slow drift on a shared machine does not favour one.
                if round_no % 2:
                    (plain_tokens, plain_s), (worker_tokens, worker_s) = run_plain(), run_worker()
                else:
                    (worker_tokens, worker_s), (plain_tokens, plain_s) = run_worker(), run_plain()
                if worker_tokens != plain_tokens:
                    raise SystemExit(f"the two sides trained different token counts: {plain_tokens} vs {worker_tokens}")
                plain, worker = plain_tokens / plain_s, worker_tokens / worker_s
                ratios.append(worker / plain)
                plain_rates.append(plain)
                worker_rates.append(worker)
                print(f"round {round_no}: plain TRL {plain:,.0f} tok/s ({plain_s:.1f} s), tunegate worker "
                      f"{worker:,.0f} tok/s ({worker_s:.1f} s), ratio {worker / plain:.3f}", flush=True)
            ratio = statistics.median(ratios)
            print(json.dumps({
                "steps": args.steps, "rounds": args.rounds, "records": args.records, "max_seq_length": args.seq,
                "plain_trl_tokens_per_s": round(statistics.median(plain_rates), 1),
                "tunegate_tokens_per_s": round(statistics.median(worker_rates), 1),
                "ratio_median": round(ratio, 4), "overhead_pct": round((1 - ratio) * 100, 2),
                "ratios": [round(r, 4) for r in ratios],
                "target_overhead_pct": 3.0, "meets_target": ratio >= 0.97,
            }, indent=2))
        finally:
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
