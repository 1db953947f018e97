"""Scanner throughput and recall versus a plain Presidio AnalyzerEngine loop, in one run.

    .venv/bin/python bench/scanner_throughput.py [--records 10000] [--workers N] [--large-mb 200]

Both sides see the same records (seeded Faker corpus with planted PII, PHI and secrets) and the same
entities and recognizers; the baseline is `AnalyzerEngine.analyze()` (NoOp NLP engine) over every text
field of every record. The scanner side is the whole pipeline, file to file: parse, validate, detect,
decide, redact, hash, fingerprint, report. `--large-mb` additionally scans a generated JSONL of that size
and reports peak RSS, to show memory stays flat (streamed, never loaded whole)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.detector_benchmark import ENTITIES, LabelledText, generate_corpus, score
from services.scanner.adapters.detector import build_analyzer, load_registry
from services.scanner.adapters.policy_files import load_policy
from services.scanner.engine.pipeline import ScanOptions, scan_dataset
from shared.datasets import DatasetManifest

SYSTEM = "You are a helpful support assistant."
CLASSIFICATION = "internal"


def build_records(n: int, seed: int, plant_rate: float) -> tuple[list[dict[str, object]], list[LabelledText]]:
    corpus = generate_corpus(2 * n, seed=seed, plant_rate=plant_rate)
    records = []
    for i in range(n):
        user, assistant = corpus[2 * i], corpus[2 * i + 1]
        records.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": user.text},
                    {"role": "assistant", "content": assistant.text},
                ]
            }
        )
    return records, corpus


def write_jsonl(path: Path, records: list[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")


def micro_recall(scores: dict) -> float:  # type: ignore[type-arg]
    planted = sum(s.planted for s in scores.values())
    return sum(s.found for s in scores.values()) / planted if planted else 1.0


def run_baseline(records: list[dict[str, object]], corpus: list[LabelledText]) -> tuple[float, dict]:  # type: ignore[type-arg]
    policy = load_policy("default")
    engine = build_analyzer(load_registry())
    entities = sorted(set(ENTITIES) & set(engine.get_supported_entities("en")))
    texts = [m["content"] for r in records for m in r["messages"]]  # type: ignore[index,union-attr]
    engine.analyze("warm up the engine", language="en", entities=entities)
    started = time.perf_counter()
    results = [engine.analyze(text, language="en", entities=entities) for text in texts]
    elapsed = time.perf_counter() - started
    # Same thresholds as the scanner's policy, so recall compares like with like.
    per_text = []
    for i in range(len(records)):
        for field in (1, 2):
            found = results[3 * i + field]
            per_text.append(
                [
                    (r.entity_type, r.start, r.end)
                    for r in found
                    if r.score >= (policy.min_score(CLASSIFICATION, r.entity_type) or 0.0)
                ]
            )
    return len(records) / elapsed, score(corpus, per_text)


def run_scanner(path: Path, n: int, corpus: list[LabelledText], workers: int | None) -> tuple[float, dict, object]:  # type: ignore[type-arg]
    manifest = DatasetManifest(classification=CLASSIFICATION, legal_basis="contract", consent_covers_training=True)
    options = ScanOptions(
        policy=load_policy("default"), hash_key=b"bench-key-0123456789abcdef", workers=workers, ner=False
    )
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = scan_dataset(path, manifest, options, Path(tmp))
        elapsed = time.perf_counter() - started
        findings = json.loads(result.report_path.read_text())["findings"]
    per_text: list[list[tuple[str, int, int]]] = [[] for _ in range(2 * n)]
    for f in findings:
        field = {"messages[1].content": 0, "messages[2].content": 1}.get(f["field"])
        if field is not None:
            per_text[2 * (f["line"] - 1) + field].append((f["entity"], f["start"], f["end"]))
    return n / elapsed, score(corpus, per_text), result


class RssSampler:
    """Peak resident memory of this process and, separately, of its largest worker, sampled every 50 ms."""

    def __init__(self) -> None:
        self.main_peak = self.worker_peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.main_peak = max(self.main_peak, me.memory_info().rss / 2**20)
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    self.worker_peak = max(self.worker_peak, child.memory_info().rss / 2**20)
            time.sleep(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def scan_generated_file(size_mb: float, workers: int | None, lines: list[str], tmp: Path) -> None:
    path = tmp / f"large-{size_mb:g}.jsonl"
    written, i = 0, 0
    with path.open("w", encoding="utf-8") as out:
        while written < size_mb * 1_000_000:
            line = lines[i % len(lines)]
            out.write(line)
            written += len(line)
            i += 1
    manifest = DatasetManifest(legal_basis="contract", consent_covers_training=True)
    options = ScanOptions(
        policy=load_policy("default"), hash_key=b"bench-key-0123456789abcdef", workers=workers, ner=False
    )
    start_rss = psutil.Process().memory_info().rss / 2**20
    with RssSampler() as rss:
        started = time.perf_counter()
        result = scan_dataset(path, manifest, options, tmp / f"out-{size_mb:g}")
        elapsed = time.perf_counter() - started
    print(
        f"{written / 1e6:7.0f} MB {result.source_records:9,} records {elapsed:7.1f}s "
        f"{result.source_records / elapsed:9,.0f} rec/s   main RSS {start_rss:5.0f} -> peak {rss.main_peak:5.0f} MB"
        f"   largest worker peak {rss.worker_peak:5.0f} MB"
    )
    path.unlink()
    for leftover in (tmp / f"out-{size_mb:g}").iterdir():
        leftover.unlink()


def large_file_check(size_mb: int, workers: int | None, seed: int) -> None:
    """Scan a file of size_mb/10 and one of size_mb: flat memory means the same peaks for both."""
    records, _ = build_records(2000, seed + 1, 0.5)
    lines = [json.dumps(r) + "\n" for r in records]
    del records
    print("\nmemory check (streamed scan of generated JSONL):")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (size_mb / 10, size_mb):
            scan_generated_file(size, workers, lines, Path(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--plant-rate", type=float, default=0.5, help="Share of texts carrying planted entities.")
    parser.add_argument("--workers", type=int, default=None, help="Scanner workers (default: all cores).")
    parser.add_argument(
        "--large-mb",
        type=int,
        default=0,
        help="Also scan generated JSONL files of this size and a tenth of it; report peak RSS.",
    )
    parser.add_argument("--skip-throughput", action="store_true", help="Only run the memory check.")
    args = parser.parse_args()
    workers = args.workers or os.cpu_count() or 1

    if args.skip_throughput:
        large_file_check(args.large_mb or 200, workers, args.seed)
        return
    records, corpus = build_records(args.records, args.seed, args.plant_rate)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        write_jsonl(path, records)
        print(
            f"{args.records} chat records ({path.stat().st_size / 1e6:.1f} MB), "
            f"{sum(len(t.planted) for t in corpus)} planted entities, {len(ENTITIES)} entity types, "
            f"{os.cpu_count()} cores"
        )
        base_rate, base_scores = run_baseline(records, corpus)
        base_recall = micro_recall(base_scores)
        print(f"baseline  AnalyzerEngine.analyze loop: {base_rate:8,.0f} records/s  recall {base_recall:.4f}")
        scan_rate, scan_scores, result = run_scanner(path, args.records, corpus, workers)
        print(
            f"tunegate  scanner ({workers} workers):      {scan_rate:8,.0f} records/s  recall "
            f"{micro_recall(scan_scores):.4f}  (verdict {result.verdict}, {result.findings_count} findings)"
        )  # type: ignore[attr-defined]
        print(f"ratio: {scan_rate / base_rate:.2f}x")
        print(f"\n{'entity':24} {'planted':>7} {'base recall':>11} {'scan recall':>11} {'scan precision':>14}")
        for entity in ENTITIES:
            b, s = base_scores[entity], scan_scores[entity]
            print(f"{entity:24} {s.planted:7d} {b.recall:11.3f} {s.recall:11.3f} {s.precision:14.3f}")
    if args.large_mb:
        large_file_check(args.large_mb, workers, args.seed)


if __name__ == "__main__":
    main()
