"""Scanner throughput and recall versus a plain Presidio AnalyzerEngine loop, in one run, with NER and without.

    .venv/bin/python bench/scanner_throughput.py [--records 2000] [--workers N] [--modes ner,no-ner]

Corpus: chat records of a system prompt (the same in every record, as in a real chat dataset), a user
message from the Faker corpus (e-mails, tickets and chats in 7 locales with names, free text and decoys;
bench/support/faker_corpus.py) and an assistant message from the detector benchmark (planted PII, PHI and
secrets among distractors; bench/support/detector_benchmark.py). Both sides see the same records and the
same recognizers and thresholds:

- with NER: the baseline is `AnalyzerEngine.analyze()` per text with a SpacyNlpEngine of the same spaCy model
  (the whole pipeline, as Presidio runs it) and Presidio's SpacyRecognizer next to the registry's
  recognizers; the scanner scans with NER on (the default);
- without NER: the baseline is the same loop with the NoOp NLP engine; the scanner scans with --no-ner.

The scanner side is the whole pipeline, file to file: parse, validate, detect, decide, redact, hash,
fingerprint, report. Memory on a large file is bench/scanner_memory.py's (RSS over a 1 GB scan)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import detector_benchmark, faker_corpus
from bench.support.detector_benchmark import EntityScore, score
from services.scanner.adapters.detector import build_analyzer, load_registry
from services.scanner.adapters.ner import NER_ENTITIES, require_ner_model
from services.scanner.adapters.policy_files import load_policy
from services.scanner.engine.pipeline import ScanOptions, ScanResult, scan_dataset
from shared.datasets import DatasetManifest

SYSTEM = (
    "You are a helpful support assistant for Acme Cloud. Answer the customer's question politely and "
    "concisely, and never repeat payment details, passwords or keys back to them."
)
CLASSIFICATION = "internal"
HASH_KEY = b"bench-key-0123456789abcdef"
FIELDS = {"messages[1].content": 0, "messages[2].content": 1}
Labelled = Any  # faker_corpus.CorpusRecord or detector_benchmark.LabelledText: both have .text and .planted


def build_records(n: int, seed: int, plant_rate: float) -> tuple[list[dict[str, object]], list[Labelled]]:
    """n chat records and the labelled texts of their user and assistant messages, in order."""
    users = faker_corpus.generate_corpus(n, seed=seed)
    assistants = detector_benchmark.generate_corpus(n, seed=seed + 1, plant_rate=plant_rate)
    records, labelled = [], []
    for user, assistant in zip(users, assistants, strict=True):
        records.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": user.text},
                    {"role": "assistant", "content": assistant.text},
                ]
            }
        )
        labelled += [user, assistant]
    return records, labelled


def write_jsonl(path: Path, records: Sequence[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")


def micro_recall(scores: dict[str, EntityScore]) -> float:
    planted = sum(s.planted for s in scores.values())
    return sum(s.found for s in scores.values()) / planted if planted else 1.0


def baseline_engine(ner: bool) -> Any:
    """Presidio as its documentation has it: AnalyzerEngine over the same recognizers, and with NER a
    SpacyNlpEngine of the scanner's spaCy model (whole pipeline) plus Presidio's SpacyRecognizer."""
    entries = load_registry()
    if not ner:
        return build_analyzer(entries)
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": require_ner_model()}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    for entry in entries:
        registry.add_recognizer(entry.recognizer)
    registry.add_recognizer(SpacyRecognizer(supported_entities=list(NER_ENTITIES)))
    return AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])


def run_baseline(
    records: list[dict[str, object]], labelled: list[Labelled], ner: bool
) -> tuple[float, float, dict]:  # type: ignore[type-arg]
    """(records/s of the loop, seconds to build the engine and load its model, scores)."""
    policy = load_policy("default")
    loading = time.perf_counter()
    engine = baseline_engine(ner)
    load_s = time.perf_counter() - loading
    floors = policy.floors(CLASSIFICATION)
    entities = sorted(set(floors) & set(engine.get_supported_entities("en")))
    texts = [m["content"] for r in records for m in r["messages"]]  # type: ignore[index,union-attr]
    engine.analyze("warm up the engine", language="en", entities=entities)
    started = time.perf_counter()
    results = [engine.analyze(text, language="en", entities=entities) for text in texts]
    elapsed = time.perf_counter() - started
    # Same thresholds as the scanner's policy, so recall compares like with like.
    per_text = [
        [(r.entity_type, r.start, r.end) for r in results[3 * i + field] if r.score >= floors[r.entity_type]]
        for i in range(len(records))
        for field in (1, 2)
    ]
    return len(records) / elapsed, load_s, score(labelled, per_text)


def run_scanner(
    path: Path, n: int, labelled: list[Labelled], workers: int | None, ner: bool
) -> tuple[float, dict[str, EntityScore], ScanResult]:
    manifest = DatasetManifest(classification=CLASSIFICATION, legal_basis="contract", consent_covers_training=True)
    options = ScanOptions(policy=load_policy("default"), hash_key=HASH_KEY, workers=workers, ner=ner)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = scan_dataset(path, manifest, options, Path(tmp))
        elapsed = time.perf_counter() - started
        findings = json.loads(result.report_path.read_text())["findings"]
    per_text: list[list[tuple[str, int, int]]] = [[] for _ in range(2 * n)]
    for f in findings:
        field = FIELDS.get(f["field"])
        if field is not None:
            per_text[2 * (f["line"] - 1) + field].append((f["entity"], f["start"], f["end"]))
    return n / elapsed, score(labelled, per_text), result


def compare(records: list[dict[str, object]], labelled: list[Labelled], path: Path, workers: int, ner: bool) -> None:
    label = "with NER" if ner else "without NER"
    base_rate, base_load_s, base_scores = run_baseline(records, labelled, ner)
    scan_rate, scan_scores, result = run_scanner(path, len(records), labelled, workers, ner)
    base_recall, scan_recall = micro_recall(base_scores), micro_recall(scan_scores)
    detectors = result.detectors
    model = f" ({detectors.ner_model} {detectors.ner_model_version})" if detectors.ner else ""
    n = len(records)
    base_cold = n / (n / base_rate + base_load_s)
    print(f"\n== {label}{model}")
    print(f"baseline  AnalyzerEngine.analyze loop:  {base_rate:8,.1f} records/s  recall {base_recall:.4f}"
          f"  (engine built in {base_load_s:.2f} s before the clock; {base_cold:,.1f} records/s with it)")
    print(
        f"tunegate  scanner ({workers} workers):       {scan_rate:8,.1f} records/s  recall {scan_recall:.4f}"
        f"  (verdict {result.verdict}, {result.findings_count} findings; from a cold start: workers, models, "
        "report)"
    )
    # The first ratio is the strict one: the scanner's start (worker processes, the registry, spaCy in each
    # worker) is on its clock and the baseline's engine is not. The second puts both starts on the clock.
    print(f"ratio: {scan_rate / base_rate:.2f}x   recall scanner - baseline: {scan_recall - base_recall:+.4f}")
    print(f"ratio with both starts counted: {scan_rate / base_cold:.2f}x")
    print(f"{'entity':24} {'planted':>7} {'base recall':>11} {'scan recall':>11} {'scan precision':>14}")
    for entity in sorted(set(base_scores) | set(scan_scores)):
        b, s = base_scores.get(entity, EntityScore(entity)), scan_scores.get(entity, EntityScore(entity))
        if s.planted or s.detections:
            print(f"{entity:24} {s.planted:7d} {b.recall:11.3f} {s.recall:11.3f} {s.precision:14.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--plant-rate", type=float, default=0.5, help="Share of assistant texts with planted entities.")
    parser.add_argument("--workers", type=int, default=None, help="Scanner workers (default: all cores).")
    parser.add_argument("--modes", default="ner,no-ner", help="Comma-separated: ner, no-ner.")
    args = parser.parse_args()
    workers = args.workers or os.cpu_count() or 1
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := set(modes) - {"ner", "no-ner"}:
        parser.error(f"--modes: unknown {sorted(unknown)}; use ner and/or no-ner")

    records, labelled = build_records(args.records, args.seed, args.plant_rate)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        write_jsonl(path, records)
        print(
            f"{args.records} chat records ({path.stat().st_size / 1e6:.1f} MB), "
            f"{sum(len(t.planted) for t in labelled)} planted entities "
            f"({sum(p.entity == 'PERSON' for t in labelled for p in t.planted)} names), "
            f"{os.cpu_count()} cores"
        )
        for mode in modes:
            compare(records, labelled, path, workers, mode == "ner")


if __name__ == "__main__":
    main()
