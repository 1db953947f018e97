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
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.support.trainer_bench import worker_bench
from services.trainer.engine.data import tokenise
from services.trainer.engine.models import load_model, load_tokenizer
from services.trainer.engine.plain import common_args
from services.trainer.engine.run import TrainingJob
from shared.events.payloads import MethodSpec
from shared.models.bases import configure_offline


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

    with worker_bench(args.models_home, lambda path: write_dataset(path, args.records)) as bench:
        hyper = {"max_steps": args.steps, "batch_size": 8, "max_seq_length": args.seq, "logging_steps": 10,
                 "save_steps": 50, "learning_rate": 2e-3}
        method = MethodSpec(kind="sft", adapter="lora")
        job = bench.plain_job(method, hyper)

        def run_plain() -> tuple[float, float]:
            shutil.rmtree(bench.root / "baseline", ignore_errors=True)
            return bench.on_torch_thread(baseline, job, bench.root / "baseline", args.steps)

        def run_worker() -> tuple[float, float]:
            metrics = bench.worker_metrics(method, hyper, evaluation={"holdout_fraction": 0.0})  # same records as plain
            return metrics["tokens_seen"], metrics["train_seconds"]

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


if __name__ == "__main__":
    main()
