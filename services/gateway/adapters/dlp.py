"""The gateway's DLP detector: the scanner's detection engine (Presidio recognizers from the scanner's
registry, each behind a cheap pre-screen; spaCy NER optionally) behind the policy's `TextDetector`.

Built once per gateway process (loading the registry takes about a second, the spaCy model more) and
shared by every request: `Detector.detect_many` holds no per-call state except its bounded repeat cache,
which makes a repeated system prompt free."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from services.gateway.domain.dlp import Finding
from services.scanner.adapters.detector import Detector, load_registry


class GatewayDetector:
    def __init__(self, detector: Detector) -> None:
        self._detector = detector

    @classmethod
    def build(
        cls, ner: bool, *, registry: Path | None = None, entities: set[str] | None = None
    ) -> GatewayDetector:
        """`ner`: also look for PERSON, LOCATION and NRP with spaCy (NerUnavailable when no model is
        installed). `entities`: compute only these types (None: every type the registry knows)."""
        return cls(Detector(load_registry(registry), entities, ner=ner))

    @property
    def ner(self) -> bool:
        return self._detector.ner

    @property
    def supported_entities(self) -> set[str]:
        found = {entity for entry in self._detector.entries for entity in entry.entities}
        if self._detector.ner:
            found |= {"PERSON", "LOCATION", "NRP"}
        return found

    def detect_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        return [
            [Finding(d.entity, d.start, d.end, d.score) for d in detections]
            for detections in self._detector.detect_many(texts)
        ]
