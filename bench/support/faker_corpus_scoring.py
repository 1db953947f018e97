"""Scoring of the Faker evaluation corpus (faker_corpus.py): recall and precision per entity type, decoy hits,
and the table bench/scanner_recall.py prints. Reuses bench.support.detector_benchmark.score (the same overlap
matching as the detector benchmark)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.support.detector_benchmark import EntityScore, score
from bench.support.faker_corpus import CorpusRecord


@dataclass(slots=True)
class CorpusScores:
    per_type: dict[str, EntityScore]
    decoys: int  # decoy spans in the corpus
    decoy_hits: int  # decoy spans overlapped by any detection (each such detection is also a false positive)

    @property
    def precision(self) -> float:
        detections = sum(s.detections for s in self.per_type.values())
        return sum(s.correct for s in self.per_type.values()) / detections if detections else 1.0

    @property
    def recall(self) -> float:
        gold = sum(s.planted for s in self.per_type.values())
        return sum(s.found for s in self.per_type.values()) / gold if gold else 1.0

    def rows(self) -> list[dict[str, object]]:
        return [
            {
                "type": s.entity,
                "gold": s.planted,
                "found": s.found,
                "detections": s.detections,
                "recall": round(s.recall, 4),
                "precision": round(s.precision, 4),
            }
            for s in self.per_type.values()
        ]


def score_corpus(records: Sequence[CorpusRecord], detections: Iterable[Iterable[tuple[str, int, int]]]) -> CorpusScores:
    """Per-type recall and precision of (entity, start, end) detections, one list per record: a detection
    is a true positive when it overlaps a gold span of its type (detector_benchmark.score's rule); decoy
    hits and every other unmatched detection are false positives. Types with neither gold nor detections
    are left out of the table."""
    found = [list(d) for d in detections]
    scores = score(records, found)
    per_type = {e: s for e, s in sorted(scores.items()) if s.planted or s.detections}
    hits = sum(
        1
        for record, dets in zip(records, found, strict=True)
        for decoy in record.decoys
        if any(s < decoy.end and decoy.start < t for _, s, t in dets)
    )
    return CorpusScores(per_type, sum(len(r.decoys) for r in records), hits)


def format_table(scores: CorpusScores) -> str:
    lines = [f"{'type':16} {'gold':>6} {'found':>6} {'detect':>6} {'recall':>7} {'precision':>9}"]
    for row in scores.rows():
        lines.append(
            f"{row['type']:16} {row['gold']:6d} {row['found']:6d} {row['detections']:6d} "
            f"{row['recall']:7.3f} {row['precision']:9.3f}"
        )
    lines.append(
        f"{'all':16} {sum(s.planted for s in scores.per_type.values()):6d} "
        f"{sum(s.found for s in scores.per_type.values()):6d} "
        f"{sum(s.detections for s in scores.per_type.values()):6d} {scores.recall:7.3f} {scores.precision:9.3f}"
    )
    lines.append(f"decoys: {scores.decoys}, hit by a detection: {scores.decoy_hits}")
    return "\n".join(lines)
