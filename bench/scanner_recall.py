"""Scanner recall and precision per entity type on the Faker corpus it was not written against.

    .venv/bin/python bench/scanner_recall.py [--records 3000] [--seed 7] [--no-ner] [--json]

The corpus (bench/support/faker_corpus.py, templates in faker_corpus_templates.yaml) is e-mails, tickets
and chats in seven locales with gold spans and look-alike decoys (order numbers, versions, ISBNs, SKUs,
invoice numbers). Detection is the scanner's own: the bundled registry, the default policy's lowest
min_score per entity for the classification, overlaps resolved and ungoverned findings dropped as the
scan does (domain.findings.decide_spans). A detection is a true positive when it overlaps a gold span of
its type; decoy hits and every other unmatched detection are false positives."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.faker_corpus import (
    CorpusRecord,
    CorpusScores,
    format_table,
    generate_corpus,
    load_templates,
    score_corpus,
)
from services.scanner.adapters.detector import Detector, load_registry, ner_model
from services.scanner.adapters.policy_files import load_policy
from services.scanner.domain.findings import Span, decide_spans


def detect(records: list[CorpusRecord], *, classification: str, ner: bool) -> list[list[tuple[str, int, int]]]:
    policy = load_policy("default")
    floors = policy.floors(classification)
    detector = Detector(load_registry(), set(floors), ner=ner, min_scores=floors)
    out = []
    for found in detector.detect_many([r.text for r in records]):
        spans = [Span(d.entity, d.start, d.end, d.score) for d in found]
        out.append([(d.span.entity, d.span.start, d.span.end) for d in decide_spans(spans, policy, classification)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--classification", default="internal")
    parser.add_argument(
        "--ner", action=argparse.BooleanOptionalAction, default=True, help="spaCy NER, as scans run by default."
    )
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of the table.")
    args = parser.parse_args()

    templates = load_templates()
    records = generate_corpus(args.records, seed=args.seed, templates=templates)
    started = time.perf_counter()
    found = detect(records, classification=args.classification, ner=args.ner)
    elapsed = time.perf_counter() - started
    scores: CorpusScores = score_corpus(records, found)
    if args.json:
        print(
            json.dumps(
                {
                    "records": len(records),
                    "seed": args.seed,
                    "templates_version": templates["version"],
                    "classification": args.classification,
                    "ner": ner_model() if args.ner else None,
                    "seconds": round(elapsed, 2),
                    "per_type": scores.rows(),
                    "recall": round(scores.recall, 4),
                    "precision": round(scores.precision, 4),
                    "decoys": scores.decoys,
                    "decoy_hits": scores.decoy_hits,
                },
                indent=2,
            )
        )
        return
    print(
        f"Faker corpus v{templates['version']}: {len(records)} documents (seed {args.seed}), 7 locales, "
        f"NER {ner_model() if args.ner else 'off'}, classification {args.classification}, detected in {elapsed:.1f}s"
    )
    print(format_table(scores))


if __name__ == "__main__":
    main()
