"""The gateway's DLP detector: the scanner's detection engine (Presidio recognizers from the scanner's
registry, each behind a cheap pre-screen; spaCy NER optionally) behind the policy's `TextDetector`.

Built once per gateway process (loading the registry takes about a second, the spaCy model more) and
shared by every request: `Detector.detect_many` holds no per-call state except its bounded repeat cache,
which makes a repeated system prompt free."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from services.gateway.domain.dlp import Finding
from services.gateway.domain.policy import Policy, PolicyConfigError, PolicySet
from services.scanner.adapters.detector import Detector, RegistryEntry, load_registry
from services.scanner.adapters.ner import NER_ENTITIES


class GatewayDetector:
    def __init__(self, detector: Detector) -> None:
        self._detector = detector

    @classmethod
    def build(
        cls,
        ner: bool,
        *,
        registry: Path | None = None,
        entities: set[str] | None = None,
        entries: list[RegistryEntry] | None = None,
    ) -> GatewayDetector:
        """`ner`: also look for PERSON, LOCATION and NRP with spaCy (NerUnavailable when no model is
        installed). `entities`: compute only these types (None: every type the registry knows). `entries`:
        an already loaded registry, shared between detectors."""
        return cls(Detector(entries if entries is not None else load_registry(registry), entities, ner=ner))

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


class GatewayDetectors:
    """One detector without NER and, when some policy asks for NER, one with it, over one loaded registry:
    each request uses the one its policy's `dlp.ner` names (NER costs milliseconds per prompt)."""

    def __init__(self, policies: PolicySet, *, registry: Path | None = None) -> None:
        entries = load_registry(registry)
        known = {entity for entry in entries for entity in entry.entities} | set(NER_ENTITIES)
        # A misspelt entity type (EMAIL_ADRESS) would never match anything: refuse it when the gateway starts.
        for policy in policies.policies:
            unknown = sorted(policy.spec.dlp.entities - known)
            if unknown:
                raise PolicyConfigError(
                    f"policy file {policies.source}: policy {policy.name!r}: dlp names entity types no detector "
                    f"finds: {unknown} (known: {', '.join(sorted(known))})"
                )
        self.plain = GatewayDetector.build(False, entries=entries)
        self.with_ner = GatewayDetector.build(True, entries=entries) if policies.needs_ner() else None

    def for_policy(self, policy: Policy) -> GatewayDetector:
        if policy.ner and self.with_ner is not None:
            return self.with_ner
        return self.plain
