"""Presidio-backed detection, made fast: recognizers from a YAML registry, each gated by a cheap pre-screen.

Plain `AnalyzerEngine.analyze()` runs every recognizer over every text (phonenumbers' matcher dominates).
Here a recognizer runs only when its pre-screen regex matches, and windowed recognizers only see the text
around the match. The recognizer objects are Presidio's (and ours), so results are the same ones Presidio
would produce; `build_analyzer` returns a plain AnalyzerEngine over the same recognizers for comparison.
NER (adapters/ner.py) runs batched over many texts at once; `detect_many` analyses each distinct text once."""

from __future__ import annotations

import hashlib
import importlib
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, PatternRecognizer, RecognizerRegistry
from presidio_analyzer import predefined_recognizers as presidio_predefined
from presidio_analyzer.nlp_engine import NoOpNlpEngine

from services.scanner.adapters.ner import (
    NER_ENTITIES,
    NerModelInfo,
    SpacyNer,
    ner_model,
    ner_model_info,
    require_ner_model,
)
from services.scanner.adapters.prescreens import word_prefix_regex
from shared.yaml_models import parse_yaml, read_limited_text

DEFAULT_REGISTRY = Path(__file__).resolve().parent.parent / "config" / "recognizers.yaml"
# Texts seen again within one detector's life (a chat dataset's system prompt in every record) are not
# analysed again; bounded, so memory stays flat however many distinct texts a scan holds.
CACHE_ENTRIES = 4096


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
        ours = ("type", "prescreen", "prescreen_words", "window", "enabled", "kwargs")
        body = {k: v for k, v in spec.items() if k not in ours}
        body.setdefault("supported_language", "en")
        try:
            return PatternRecognizer.from_dict(body)
        except (TypeError, ValueError, KeyError) as exc:
            raise RegistryError(f"{where}: invalid custom pattern recognizer ({exc})") from exc
    raise RegistryError(f"{where}: type must be predefined, class or custom, got {kind!r}")


def ner_available() -> bool:
    return ner_model() is not None


@dataclass(frozen=True, slots=True)
class DetectorsInfo:
    """Which detectors a scan ran: the report and dataset.scanned carry it, so that a scan without NER can
    never pass for a full one."""

    ner: bool
    ner_model: str | None
    ner_model_version: str | None
    recognizers: tuple[str, ...]
    registry_sha256: str

    def as_dict(self) -> dict[str, object]:
        return {
            "ner": self.ner,
            "ner_model": self.ner_model,
            "ner_model_version": self.ner_model_version,
            "recognizers": list(self.recognizers),
            "registry_sha256": self.registry_sha256,
        }


def registry_sha256(path: Path | None = None) -> str:
    return hashlib.sha256((path or DEFAULT_REGISTRY).read_bytes()).hexdigest()


def describe_detectors(
    entries: list[RegistryEntry], entities: set[str] | None, *, ner: bool, registry_path: Path | None = None
) -> DetectorsInfo:
    """What a Detector built from these arguments runs, without loading the spaCy model."""
    model: NerModelInfo | None = ner_model_info(require_ner_model()) if ner else None
    names = [e.recognizer.name for e in entries if entities is None or set(e.entities) & entities]
    if model is not None and (entities is None or set(NER_ENTITIES) & entities):
        names.append("SpacyRecognizer")
    return DetectorsInfo(
        ner=model is not None,
        ner_model=model.name if model else None,
        ner_model_version=model.version if model else None,
        recognizers=tuple(names),
        registry_sha256=registry_sha256(registry_path),
    )


def _prescreen(spec: dict[str, Any], where: str) -> re.Pattern[str] | None:
    """`prescreen` (a regex) or `prescreen_words` (keywords matched case-insensitively as word prefixes,
    compiled to a trie: a long keyword alternation as a flat regex costs more than most recognizers)."""
    words = spec.get("prescreen_words")
    if words is not None and spec.get("prescreen"):
        raise RegistryError(f"{where}: give prescreen or prescreen_words, not both")
    if words is not None:
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise RegistryError(f"{where}: prescreen_words must be a non-empty list of words")
        return word_prefix_regex(words)
    try:
        return re.compile(spec["prescreen"]) if spec.get("prescreen") else None
    except re.error as exc:
        raise RegistryError(f"{where}: invalid prescreen regex ({exc})") from exc


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
        prescreen = _prescreen(spec, f"{where} ({spec['name']})")
        window = int(spec.get("window", 0))
        skip = spec.get("skip_covered_above")
        if skip is not None and not window:
            raise RegistryError(f"{where} ({spec['name']}): skip_covered_above only applies to windowed recognizers")
        recognizer = _build_recognizer(spec, f"{where} ({spec['name']})")
        recognizer.load()
        if prescreen is None:
            # A class may carry its own pre-screen (PRESCREEN, a compiled regex), built from the words its
            # patterns are built from, so that the two cannot drift apart; the registry's, if given, wins.
            prescreen = getattr(recognizer, "PRESCREEN", None)
        if window and prescreen is None:
            raise RegistryError(f"{where} ({spec['name']}): window needs a prescreen to centre on")
        entries.append(RegistryEntry(recognizer, prescreen, window, None if skip is None else float(skip)))
    # Recognizers that skip covered matches run last, so every stronger detection is known by then.
    entries.sort(key=lambda e: e.skip_covered_above is not None)
    return entries


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


def merge_ner(patterns: list[Detection], ner: list[Detection]) -> list[Detection]:
    """The NER detections to add to the registry's: those not overlapping a registry detection of another
    entity type. spaCy scores every entity a flat 0.85 (Presidio's ner_strength), which would outrank a
    checksum- or context-validated ICD-10 code, IPv6 address or keyword secret that spaCy misreads as a name
    or place in overlap resolution; and a LOCATION the policy allows would then let a secret through
    unredacted. Same-type overlaps stay (a longer NER name than the context recognizer's is kept)."""
    return [
        n
        for n in ner
        if not any(p.entity != n.entity and p.start < n.end and n.start < p.end for p in patterns)
    ]


class Detector:
    """Runs the registry (and, with `ner`, spaCy NER) over texts. Entities outside `entities` are never
    computed; detections scoring below `min_scores[entity]` (the policy's lowest threshold) are discarded
    at once. `detect_many` is the fast path: repeated texts are analysed once, NER runs batched."""

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
        self._ner: SpacyNer | None = None
        if ner:
            wanted = [e for e in NER_ENTITIES if entities is None or e in entities]
            self._ner = SpacyNer(require_ner_model(), wanted)
        self._cache: OrderedDict[bytes, list[Detection]] = OrderedDict()

    @property
    def ner(self) -> bool:
        return self._ner is not None

    def detect(self, text: str) -> list[Detection]:
        return self.detect_many([text])[0]

    def detect_many(self, texts: Sequence[str]) -> list[list[Detection]]:
        """Detections per text, in order: the registry's first, then NER's (the order `detect` always had,
        so overlap resolution downstream sees the same list)."""
        keys = [hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest() for text in texts]
        fresh: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._cache and key not in fresh:
                fresh[key] = text
        if fresh:
            todo = list(fresh.values())
            found = [self._patterns(text) for text in todo]
            if self._ner is not None:
                ner_name = self._ner.name
                for spans, ner_spans in zip(found, self._ner.analyze_many(todo), strict=True):
                    spans.extend(
                        merge_ner(
                            spans,
                            [
                                Detection(s.entity, s.start, s.end, s.score, ner_name)
                                for s in ner_spans
                                if s.score >= self.min_scores.get(s.entity, 0.0)
                            ],
                        )
                    )
            for key, spans in zip(fresh, found, strict=True):
                self._cache[key] = spans
        results = []
        for key in keys:
            self._cache.move_to_end(key)
            results.append(list(self._cache[key]))
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return results

    def _patterns(self, text: str) -> list[Detection]:
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
