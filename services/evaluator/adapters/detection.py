"""The scanner's detection engine, pointed at model outputs: the PII-leakage and red-team suites judge
what a model says with the same recognizers (and NER, when installed) that judged its training data."""

from __future__ import annotations

from collections.abc import Sequence

from services.evaluator.suites.base import TextDetector, TextFinding

DEFAULT_MIN_SCORE = 0.5
"""For entities the policy does not govern."""


def scanner_detector(*, ner: bool | None = None, policy: str = "default",
                     min_score: float | None = None) -> TextDetector:
    """NER follows the scanner's rule: on when a spaCy English model is installed, unless told otherwise.

    A finding counts when it reaches the lowest min_score the scan policy gives its entity in any
    classification, as in the scanner: Presidio's phone recognizer scores every number 0.4, so one flat 0.5
    floor would never see a phone number in an output. `min_score` sets one floor for every entity instead."""
    from services.scanner.adapters.detector import Detector, load_registry, ner_available
    from services.scanner.adapters.policy_files import load_policy
    from services.scanner.domain.policy import CLASSIFICATIONS

    detector = Detector(load_registry(), ner=ner_available() if ner is None else ner)
    rules = load_policy(policy)
    floors: dict[str, float] = {}
    for entity in rules.entities():
        scores = [s for c in CLASSIFICATIONS if (s := rules.min_score(c, entity)) is not None]
        if scores:
            floors[entity] = min(scores)

    def floor(entity: str) -> float:
        return min_score if min_score is not None else floors.get(entity, DEFAULT_MIN_SCORE)

    def detect(texts: Sequence[str]) -> list[list[TextFinding]]:
        return [
            [TextFinding(d.entity, d.start, d.end, d.score) for d in detector.detect(text)
             if d.score >= floor(d.entity)]
            for text in texts
        ]

    return detect
