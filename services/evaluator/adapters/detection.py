"""The scanner's detection engine, pointed at model outputs: the PII-leakage and red-team suites judge
what a model says with the same recognizers (and NER, when installed) that judged its training data."""

from __future__ import annotations

from collections.abc import Sequence

from services.evaluator.suites.base import TextDetector, TextFinding


def scanner_detector(*, ner: bool | None = None, min_score: float = 0.5) -> TextDetector:
    """NER follows the scanner's rule: on when a spaCy English model is installed, unless told otherwise."""
    from services.scanner.adapters.detector import Detector, load_registry, ner_available

    detector = Detector(load_registry(), ner=ner_available() if ner is None else ner)

    def detect(texts: Sequence[str]) -> list[list[TextFinding]]:
        return [
            [TextFinding(d.entity, d.start, d.end, d.score) for d in detector.detect(text) if d.score >= min_score]
            for text in texts
        ]

    return detect
