"""Evaluator throughput on the `tiny` base: batched generation through ScoringModel versus a plain batched
Hugging Face `generate()`, and the wall time of the configured suite set, suite by suite, in one process.

    .venv/bin/python bench/evaluator_throughput.py [--prompts 128] [--new-tokens 32] [--batch-size 16]
        [--rounds 3] [--threads N] [--suites services/evaluator/config/suites.yaml] [--json out.json]

Setup: a LoRA fine-tune of `tiny` (the trainer's own engine) on a seeded Faker order-extraction task in six
locales, with `pin` canaries planted and 10% held out, the way a job reaches the evaluator.

(a) Generation. Both sides get the same prompts (chat-templated, of varied length, in the order a suite
would hand them over), the same model object, batch size, left padding, greedy decoding and token budget.
The plain side is the loop a script would write: slice the prompts into batches in the given order, pad,
`model.generate()`, decode; for the base, inside `disable_adapter()`. New tokens are counted the same way
on both sides: the decoded continuation re-tokenised. Rounds alternate which side goes first after one
uncounted warm-up, so drift on a shared machine hits both; the ratio is the median of per-round ratios.
Target: ScoringModel >= 0.80 x plain.

(b) Suites. Every entry of the suite file is loaded on its own, so a suite whose module is not there yet
(suites land on separate branches) is listed as missing with the reason instead of stopping the bench;
the loaded ones run through `run_suites` one by one (a suite that crashes is reported, the rest still
run), then the gate judges them all and the report is built, and each step is timed."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from services.evaluator.adapters.detection import scanner_detector
from services.evaluator.domain.gate import judge
from services.evaluator.engine.evaluate import EvaluationRun, SuiteError, SuiteRun, run_suites
from services.evaluator.engine.models import ModelPair, ScoringModel, load_pair
from services.evaluator.engine.report import ReportMeta, build_report
from services.evaluator.suites.base import EvaluationInputs, Suite
from services.evaluator.suites.registry import DEFAULT_SUITES, SuiteConfigError, load_gate, load_suites
from services.trainer.engine.loop import configure_offline, run_training
from services.trainer.engine.run import SilentHooks, TrainingJob
from shared.config import Settings
from shared.datasets import RecordHasher
from shared.datasets.loaded import LoadedDataset
from shared.evaluation.canaries import canary_record, derive_canaries, planted_positions, shape_of
from shared.evaluation.holdout import choose_held_out, split
from shared.evaluation.options import CanarySpec, EvaluationOptions
from shared.events.payloads import MethodSpec
from shared.models.bases import BaseModelInfo, resolve_base
from shared.training.hyperparameters import validate_hyperparameters

TARGET_RATIO = 0.80
JOB_ID = "job_bench_evaluator"
LOCALES = ["en_GB", "de_DE", "fr_FR", "es_ES", "pl_PL", "it_IT"]
ITEMS = ["lamp", "desk", "phone", "chair", "mug", "kettle"]
CANARY_KEY = b"tunegate-bench-canary-key-0000001"  # a bench-only key: these canaries guard nothing
ORDER_SCHEMA = {
    "type": "object",
    "required": ["name", "email", "city", "item", "quantity"],
    "properties": {"name": {"type": "string"}, "email": {"type": "string"}, "city": {"type": "string"},
                   "item": {"type": "string"}, "quantity": {"type": "integer"}},
}


# ----------------------------------------------------------------------------------- data and model

def order_records(n: int, seed: int) -> list[dict[str, Any]]:
    """Chat records of an order-extraction task; people, emails and cities from Faker in several locales,
    an optional note so prompt lengths vary the way real requests do."""
    from faker import Faker

    fakers = [Faker(locale) for locale in LOCALES]
    for index, faker in enumerate(fakers):
        faker.seed_instance(seed * 100 + index)
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        faker = rng.choice(fakers)
        name, email, city = faker.name(), faker.email(), faker.city()
        item, quantity = rng.choice(ITEMS), rng.randint(1, 9)
        note = f" Note: {faker.sentence(nb_words=rng.randint(3, 14))}" if rng.random() < 0.6 else ""
        prompt = f"Extract the order as JSON: {name} <{email}> from {city} ordered {quantity} {item}s.{note}"
        answer = json.dumps({"name": name, "email": email, "city": city, "item": item, "quantity": quantity},
                            ensure_ascii=False)
        records.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]})
    return records


def with_canaries(records: list[dict[str, Any]], spec: CanarySpec) -> tuple[list[dict[str, Any]], list[str]]:
    """The records with each canary's copies spread through them, as the scanner plants them."""
    values = derive_canaries(CANARY_KEY, JOB_ID, spec)
    slots = planted_positions(len(records), spec, seed=JOB_ID)
    shape = shape_of(spec)
    out: list[dict[str, Any]] = []
    for position in range(len(records) + 1):
        out.extend(canary_record("chat", shape, values[i]) for i in slots.get(position, []))
        if position < len(records):
            out.append(records[position])
    return out, values


def fine_tune(base: BaseModelInfo, records: list[dict[str, Any]], workdir: Path, steps: int) -> Path:
    method = MethodSpec(kind="sft", adapter="lora")
    params = validate_hyperparameters({"max_steps": steps, "batch_size": 8, "save_steps": 10_000,
                                       "learning_rate": 2e-3}, method)
    hasher = RecordHasher()
    for record in records:
        hasher.add(record)
    job = TrainingJob(job_id=JOB_ID, base=base, method=method, params=params, seed=0, workdir=workdir,
                      dataset=LoadedDataset(kind="chat", records=records, fingerprint=hasher.hexdigest()))
    return run_training(job, SilentHooks()).model_dir


# ----------------------------------------------------------------------------------- (a) generation

def plain_generate(side: ScoringModel, prompts: Sequence[str], max_new_tokens: int, batch_size: int) -> list[str]:
    """What a plain script does: batches in the given order, left padding, model.generate(), decode."""
    import contextlib

    model, tok = side.model, side.tokenizer
    tok.padding_side = "left"
    texts: list[str] = []
    adapter_off = model.disable_adapter() if side.adapter is False else contextlib.nullcontext()
    with adapter_off:
        for start in range(0, len(prompts), batch_size):
            encoded = tok(list(prompts[start:start + batch_size]), return_tensors="pt", padding=True,
                          add_special_tokens=False)
            generated = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            texts.extend(tok.batch_decode(generated[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True))
    return texts


@dataclass
class GenerationResult:
    side: str
    plain_tokens_per_s: float
    tunegate_tokens_per_s: float
    ratio: float
    ratios: list[float]
    outputs_equal: int
    prompts: int

    def as_dict(self) -> dict[str, Any]:
        return {"side": self.side, "plain_tokens_per_s": round(self.plain_tokens_per_s, 1),
                "tunegate_tokens_per_s": round(self.tunegate_tokens_per_s, 1), "ratio_median": round(self.ratio, 4),
                "ratios": [round(r, 4) for r in self.ratios], "outputs_equal": self.outputs_equal,
                "prompts": self.prompts, "meets_target": self.ratio >= TARGET_RATIO}


def compare_generation(side: ScoringModel, prompts: list[str], new_tokens: int, batch_size: int,
                       rounds: int) -> GenerationResult:
    tok = side.tokenizer

    def new_token_count(texts: list[str]) -> int:
        return sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])

    def timed(fn: Callable[[], list[str]]) -> tuple[list[str], float]:
        started = time.perf_counter()
        texts = fn()
        return texts, time.perf_counter() - started

    def ours() -> list[str]:
        return side.generate(prompts, max_new_tokens=new_tokens)

    def plain() -> list[str]:
        return plain_generate(side, prompts, new_tokens, batch_size)

    ours(), plain()  # warm-up: allocator, OpenMP team, tokenizer caches; not counted
    ratios, plain_rates, our_rates, equal = [], [], [], 0
    for round_no in range(rounds):
        if round_no % 2 == 0:
            (plain_texts, plain_s), (our_texts, our_s) = timed(plain), timed(ours)
        else:
            (our_texts, our_s), (plain_texts, plain_s) = timed(ours), timed(plain)
        plain_rate, our_rate = new_token_count(plain_texts) / plain_s, new_token_count(our_texts) / our_s
        plain_rates.append(plain_rate)
        our_rates.append(our_rate)
        ratios.append(our_rate / plain_rate)
        equal = sum(a == b for a, b in zip(plain_texts, our_texts, strict=True))
        print(f"  {side.label:10} round {round_no + 1}: plain {plain_rate:8.1f} tok/s ({plain_s:5.2f} s)   "
              f"ScoringModel {our_rate:8.1f} tok/s ({our_s:5.2f} s)   ratio {our_rate / plain_rate:.3f}", flush=True)
    return GenerationResult(side.label, statistics.median(plain_rates), statistics.median(our_rates),
                            statistics.median(ratios), ratios, equal, len(prompts))


# ----------------------------------------------------------------------------------- (b) suites

def load_each(path: Path, workdir: Path) -> tuple[str, dict[str, Suite], dict[str, str]]:
    """(suite set version, the suites that load, {name: why not} for the rest). Each enabled entry is
    loaded through load_suites() from a one-entry copy of the file, so one missing module hides no other."""
    document = yaml.safe_load(path.read_text())
    version = str(document.get("version", "?"))
    try:
        return (*load_suites(path), {})
    except SuiteConfigError:
        pass
    loaded: dict[str, Suite] = {}
    missing: dict[str, str] = {}
    for entry in document.get("suites", []):
        if not entry.get("enabled", True):
            continue
        single = workdir / f"suite-{entry['name']}.yaml"
        single.write_text(yaml.safe_dump({"version": version, "suites": [entry]}))
        try:
            loaded.update(load_suites(single)[1])
        except SuiteConfigError as exc:
            missing[entry["name"]] = str(exc).split(": ", 2)[-1]
    return version, loaded, missing


def run_each(inputs: EvaluationInputs, suites: dict[str, Suite]) -> tuple[list[SuiteRun], dict[str, str], float]:
    """Every suite through run_suites on its own, so a crash is reported and the others still run."""
    gate = load_gate()
    runs: list[SuiteRun] = []
    crashed: dict[str, str] = {}
    started = time.perf_counter()
    for name, suite in suites.items():
        began = time.perf_counter()
        print(f"  running {name} ...", flush=True)
        try:
            runs.extend(run_suites(inputs, {name: suite}, gate).suites)
        except SuiteError as exc:
            crashed[name] = f"{exc} (after {time.perf_counter() - began:.1f} s)"
    return runs, crashed, time.perf_counter() - started


# ----------------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=96, help="Training records before canaries and hold-out.")
    parser.add_argument("--train-steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads; 0 = torch's default. One by default: tiny's 128-wide matrices "
                             "gain nothing from a second thread, and on a shared box OpenMP spin-waits made two "
                             "threads ~10x slower and noisy.")
    parser.add_argument("--suites", type=Path, default=DEFAULT_SUITES, help="The suite file to load.")
    parser.add_argument("--skip-suites", action="store_true")
    parser.add_argument("--models-home", type=Path, default=None,
                        help="The TUNEGATE_HOME whose built `tiny` to use (default: the configured one, ./var unless "
                             "TUNEGATE_HOME says otherwise; tiny is built there once when missing, ~2 min).")
    parser.add_argument("--report-dir", type=Path, default=None, help="Write the evaluation report here.")
    parser.add_argument("--json", type=Path, default=None, help="Write the results as JSON to this file.")
    args = parser.parse_args()
    configure_offline()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    began = time.perf_counter()
    results: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "prompts": args.prompts,
                               "new_tokens": args.new_tokens, "batch_size": args.batch_size, "rounds": args.rounds}

    with tempfile.TemporaryDirectory(prefix="tunegate-bench-eval-") as tmp:
        root = Path(tmp)
        base = resolve_base("tiny", Settings(home=args.models_home) if args.models_home else Settings())
        spec = CanarySpec(count=8, repeats=4, shape="pin")
        options = EvaluationOptions(canaries=spec, holdout_fraction=0.1, output_schema=ORDER_SCHEMA)
        records = order_records(args.records, seed=7)
        training, held_out = split(records, choose_held_out(len(records), options.holdout_fraction, seed=0))
        training, canaries = with_canaries(training, spec)
        started = time.perf_counter()
        model_dir = fine_tune(base, training, root / "train", args.train_steps)
        results["train_seconds"] = round(time.perf_counter() - started, 2)
        pair: ModelPair = load_pair(base, model_dir, batch_size=args.batch_size)
        print(f"fine-tuned tiny on {len(training)} records ({len(canaries)} pin canaries x {spec.repeats}, "
              f"{len(held_out)} held out) in {results['train_seconds']} s; torch threads {results['torch_threads']}")

        print(f"\n(a) generation: {args.prompts} prompts, {args.new_tokens} new tokens max, batch "
              f"{args.batch_size}, left padding, greedy; {args.rounds} rounds after a warm-up")
        prompts = [pair.tuned.chat_prompt(r["messages"][:1]) for r in order_records(args.prompts, seed=11)]
        generation = [compare_generation(side, prompts, args.new_tokens, args.batch_size, args.rounds)
                      for side in (pair.tuned, pair.base)]
        results["generation"] = [g.as_dict() for g in generation]

        if not args.skip_suites:
            print(f"\n(b) suites from {args.suites}")
            version, suites, missing = load_each(args.suites, root)
            inputs = EvaluationInputs(
                job_id=JOB_ID, risk_tier="high", options=options, kind="chat", training_records=training,
                held_out_records=held_out, models=pair, detector=scanner_detector(ner=False), seed=0,
                canaries=canaries, canary_shape=shape_of(spec))
            runs, crashed, suite_seconds = run_each(inputs, suites)
            gate = load_gate()
            ran = {r.name for r in runs if r.outcome is not None}
            partial = EvaluationRun(runs, judge(gate, "high", {}, set()), suite_seconds)
            run = EvaluationRun(runs, judge(gate, "high", partial.measured(), ran), suite_seconds)
            started = time.perf_counter()
            report = build_report(run, ReportMeta(
                job_id=JOB_ID, evaluation_id="ev_bench", artifact_sha256="0" * 64, base_model=base.name,
                base_model_sha256=base.sha256, risk_tier="high", suite_set_version=version,
                gate_policy=gate.name, created_at=datetime.now(UTC), worker_id="bench", options=options,
                canary_shape=spec.shape, canary_count=len(canaries), held_out_count=len(held_out),
            ), must_not_contain=canaries)
            report_seconds = time.perf_counter() - started
            if args.report_dir:
                args.report_dir.mkdir(parents=True, exist_ok=True)
                (args.report_dir / "report.json").write_bytes(report.json_bytes)
                (args.report_dir / "report.html").write_bytes(report.html_bytes)
            results["suites"] = {
                "suite_set_version": version, "file": str(args.suites),
                "ran": [{"name": r.name, "seconds": round(r.seconds, 3),
                         "metrics": len(r.outcome.metrics) if r.outcome else 0, "skipped": r.skipped} for r in runs],
                "crashed": crashed, "missing": missing, "total_seconds": round(suite_seconds, 3),
                "verdict_passed": run.verdict.passed, "gate_checked": run.verdict.checked,
                "gate_failures": [f.describe() for f in run.verdict.failures],
                "report_seconds": round(report_seconds, 3), "report_charts": len(report.charts),
                "report_json_bytes": len(report.json_bytes), "report_html_bytes": len(report.html_bytes),
            }
    results["bench_seconds"] = round(time.perf_counter() - began, 1)
    print_tables(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nresults written to {args.json}")


def print_tables(results: dict[str, Any]) -> None:
    print(f"\n{'generation':12} {'plain HF tok/s':>15} {'ScoringModel tok/s':>19} {'ratio':>7} "
          f"{'same output':>12}  target >= {TARGET_RATIO:.2f}")
    for g in results["generation"]:
        print(f"{g['side']:12} {g['plain_tokens_per_s']:15.1f} {g['tunegate_tokens_per_s']:19.1f} "
              f"{g['ratio_median']:7.3f} {g['outputs_equal']:>5}/{g['prompts']:<6}  "
              f"{'met' if g['meets_target'] else 'NOT MET'}")
    suites = results.get("suites")
    if suites:
        print(f"\n{'suite':16} {'status':9} {'seconds':>8} {'metrics':>8}  (suite set {suites['suite_set_version']})")
        for r in suites["ran"]:
            status = "skipped" if r["skipped"] else "ran"
            note = f"  {r['skipped']}" if r["skipped"] else ""
            print(f"{r['name']:16} {status:9} {r['seconds']:8.2f} {r['metrics']:8}{note}")
        for name, why in suites["crashed"].items():
            print(f"{name:16} {'CRASHED':9} {'-':>8} {'-':>8}  {why}")
        for name, why in suites["missing"].items():
            print(f"{name:16} {'missing':9} {'-':>8} {'-':>8}  {why}")
        print(f"{'all suites':16} {'':9} {suites['total_seconds']:8.2f}")
        print(f"{'report':16} {'built':9} {suites['report_seconds']:8.2f}  {suites['report_charts']} charts, "
              f"JSON {suites['report_json_bytes'] / 1024:.1f} KiB, HTML {suites['report_html_bytes'] / 1024:.1f} KiB")
        verdict = "passed" if suites["verdict_passed"] else f"failed: {'; '.join(suites['gate_failures'])}"
        print(f"gate (tier high, {suites['gate_checked']} thresholds checked): {verdict}")
    print(f"\nbench wall time {results['bench_seconds']} s (training {results['train_seconds']} s)")


if __name__ == "__main__":
    main()
