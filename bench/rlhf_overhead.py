"""RLHF throughput through a tunegate worker versus TRL's GRPOTrainer driven by a plain script, same data,
model, rewards and settings, in the same run.

    .venv/bin/python bench/rlhf_overhead.py [--steps 30] [--rounds 3] [--records 64] [--models-home DIR]

The tunegate side is the real `training.requested` handler for method rlhf (GRPO, LoRA, a rule-based reward
declared in the job): lease + fencing token in Redis, a cancel check every step, the KL bound checked at every
logged step, training.progress (with reward and KL) and training.checkpointed published to the Redis stream,
checkpoint manifests in the artefact store, heartbeats on the event loop. The baseline is GRPOTrainer with
the same GRPOConfig values, the same reward computed by a plain function, the same checkpoint cadence and
no callbacks, on the OS thread the worker trains on. Steps/s is optimizer steps over the trainer.train()
wall time; tokens/s counts prompt and sampled completion tokens (trainer.state.num_input_tokens_seen).
Rounds alternate the baseline/tunegate order after one uncounted warm-up, so drift on a shared machine
hits both; each ratio is the median of per-round ratios.
Target: overhead <= 3% (steps/s ratio >= 0.97)."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.support.trainer_bench import worker_bench
from bench.trainer_overhead import write_dataset
from services.trainer.engine.models import apply_lora, load_model, load_tokenizer
from services.trainer.engine.reinforcement import prompt_rows, rl_args
from services.trainer.engine.run import TrainingJob
from shared.events.payloads import MethodSpec
from shared.models.bases import configure_offline

KEYWORD = "{"


def mentions_keyword(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
    """The job's keywords rule, written as a plain TRL reward function."""
    return [float(KEYWORD in "".join(m["content"] for m in c)) for c in completions]


def baseline(job: TrainingJob, out: Path, steps: int) -> tuple[float, float, float]:
    """A plain TRL script: GRPOTrainer, the same args and reward, no tunegate code in the loop."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    assert job.method.rlhf is not None
    tokenizer = load_tokenizer(job.base)
    tokenizer.padding_side = "left"
    model = apply_lora(load_model(job.base, job.seed), job.params, job.seed)
    trainer = GRPOTrainer(model=model, reward_funcs=[mentions_keyword],
                          args=GRPOConfig(**rl_args(job, out, steps, job.method.rlhf) | {"reward_weights": [1.0]}),
                          train_dataset=Dataset.from_list(prompt_rows(job.dataset.records)),
                          processing_class=tokenizer)
    started = time.monotonic()
    trainer.train()
    return float(trainer.state.global_step), float(trainer.state.num_input_tokens_seen), time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=64)
    parser.add_argument("--models-home", type=Path, default=None,
                        help="A TUNEGATE_HOME whose built `tiny` to reuse (default: build it in a temp home).")
    args = parser.parse_args()
    configure_offline()

    with worker_bench(args.models_home, lambda path: write_dataset(path, args.records)) as bench:
        hyper = {"max_steps": args.steps, "batch_size": 8, "max_seq_length": 128, "logging_steps": 5,
                 "save_steps": 10, "learning_rate": 5e-3}
        method = MethodSpec.model_validate({"kind": "rlhf", "rlhf": {
            "algorithm": "grpo", "num_generations": 4, "max_completion_tokens": 16, "kl_bound": 100,
            "reward_functions": [{"kind": "keywords", "keywords": [KEYWORD]}]}})
        job = bench.plain_job(method, hyper)

        def run_plain() -> tuple[float, float, float]:
            shutil.rmtree(bench.root / "baseline", ignore_errors=True)
            return bench.on_torch_thread(baseline, job, bench.root / "baseline", args.steps)

        def run_worker() -> tuple[float, float, float]:
            metrics = bench.worker_metrics(method, hyper, evaluation={"holdout_fraction": 0.0})
            return metrics["steps"], metrics["tokens_seen"], metrics["train_seconds"]

        run_plain()  # warm-up (allocator, OpenMP team, file cache); not counted
        step_ratios, token_ratios, plain_steps, worker_steps = [], [], [], []
        for round_no in range(1, args.rounds + 1):
            if round_no % 2:  # alternate which side goes first so drift does not favour one
                (ps, pt, p_s), (ws, wt, w_s) = run_plain(), run_worker()
            else:
                (ws, wt, w_s), (ps, pt, p_s) = run_worker(), run_plain()
            if ps != ws:
                raise SystemExit(f"the two sides trained different step counts: {ps} vs {ws}")
            step_ratios.append((ws / w_s) / (ps / p_s))
            token_ratios.append((wt / w_s) / (pt / p_s))
            plain_steps.append(ps / p_s)
            worker_steps.append(ws / w_s)
            print(f"round {round_no}: plain TRL {ps / p_s:.3f} steps/s {pt / p_s:,.0f} tok/s ({p_s:.1f} s), "
                  f"tunegate worker {ws / w_s:.3f} steps/s {wt / w_s:,.0f} tok/s ({w_s:.1f} s), "
                  f"steps/s ratio {step_ratios[-1]:.3f}", flush=True)
        ratio = statistics.median(step_ratios)
        print(json.dumps({
            "steps": args.steps, "rounds": args.rounds, "records": args.records, "algorithm": "grpo",
            "plain_trl_steps_per_s": round(statistics.median(plain_steps), 4),
            "tunegate_steps_per_s": round(statistics.median(worker_steps), 4),
            "steps_ratio_median": round(ratio, 4), "tokens_ratio_median": round(statistics.median(token_ratios), 4),
            "overhead_pct": round((1 - ratio) * 100, 2), "ratios": [round(r, 4) for r in step_ratios],
            "target_overhead_pct": 3.0, "meets_target": ratio >= 0.97,
        }, indent=2))


if __name__ == "__main__":
    main()
