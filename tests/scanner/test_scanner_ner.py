"""NER at speed: batched, deduplicated, trimmed spaCy gives exactly the entities of Presidio's per-text path;
scans with NER say so, and are the same inline and across worker processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from presidio_analyzer.nlp_engine import SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from bench.support.faker_corpus import generate_corpus
from services.scanner.adapters import detector as detector_module
from services.scanner.adapters import ner as ner_module
from services.scanner.adapters.detector import Detection, Detector, RegistryEntry, merge_ner
from services.scanner.adapters.ner import NER_ENTITIES, ner_model, refined_entity
from services.scanner.domain.policy import Policy
from services.scanner.engine.pipeline import ScanOptions, scan_dataset
from shared.datasets import DatasetManifest

SYSTEM = "You are a helpful support assistant for Acme Cloud. Never repeat card numbers."


@pytest.fixture(scope="module")
def ner_detector(registry: list[RegistryEntry], policy: Policy) -> Detector:
    floors = policy.floors("internal")
    return Detector(registry, set(floors), ner=True, min_scores=floors)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    corpus = [r.text for r in generate_corpus(120, seed=11)]
    # Repeats (a system prompt in every record), texts without letters, an empty one.
    return [SYSTEM, *corpus[:60], SYSTEM, "12 345 678", "", *corpus[60:], SYSTEM, corpus[3]]


def presidio_per_text(detector: Detector, text: str) -> list[Detection]:
    """The reference: the registry's detections, then Presidio's own per-text NER path (SpacyNlpEngine.
    process_text, whole-artifact conversion, SpacyRecognizer.analyze) on the same spaCy pipeline, over every
    piece as the scanner cuts them (ner.pieces: lines, split after sentence ends), then the scanner's
    documented check of each span in the whole text (ner.refined_entity). The scanner gives the model only the
    pieces that can hold a reported entity: the results must be the same as reading them all."""
    assert detector._ner is not None
    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": detector._ner.info.name}])
    engine.nlp = {"en": detector._ner.nlp}
    recognizer = SpacyRecognizer(supported_entities=list(NER_ENTITIES))
    refined = []
    for offset, piece in ner_module.pieces(text):
        if any(c.isalpha() for c in piece):
            artifacts = engine.process_text(piece, "en")
            for r in recognizer.analyze(piece, list(NER_ENTITIES), artifacts):
                start, end = r.start + offset, r.end + offset
                refined.append((refined_entity(text, r.entity_type, start, end), start, end, r.score))
    ner = [
        Detection(entity, start, end, float(score), recognizer.name)
        for entity, start, end, score in refined
        if entity is not None and score >= detector.min_scores.get(entity, 0.0)
    ]
    patterns = detector._patterns(text)
    return patterns + merge_ner(patterns, ner)


def test_batched_ner_finds_what_the_per_text_path_finds(ner_detector: Detector, texts: list[str]) -> None:
    batched = ner_detector.detect_many(texts)
    assert batched == [presidio_per_text(ner_detector, text) for text in texts]
    assert batched == [ner_detector.detect(text) for text in texts]  # again, from the cache
    assert any(d.recognizer == "SpacyRecognizer" and d.entity == "PERSON" for found in batched for d in found)


def _spied(detector: Detector, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the detector's spaCy pipeline is given from now on."""
    assert detector._ner is not None
    seen: list[str] = []
    pipe = detector._ner.nlp.pipe

    def spy(items, **kwargs):  # type: ignore[no-untyped-def]
        items = list(items)
        seen.extend(items)
        return pipe(items, **kwargs)

    monkeypatch.setattr(detector._ner.nlp, "pipe", spy)
    return seen


def test_repeated_texts_texts_without_letters_and_lines_without_a_name_skip_spacy(
    registry: list[RegistryEntry], policy: Policy, texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    detector = Detector(registry, set(policy.floors("internal")), ner=True)
    assert detector._ner is not None
    seen = _spied(detector, monkeypatch)
    detector.detect_many(texts)
    assert seen.count(SYSTEM) == 1 and "12 345 678" not in seen and "" not in seen
    lines = [piece for t in texts for _, piece in ner_module.pieces(t)]
    with_letters = {line for line in lines if any(c.isalpha() for c in line)}
    read = [line for line in seen if line in with_letters]
    assert len(read) == len(set(read)), "the corpus repeats lines (greetings, sign-offs): each is read once"
    # Lines that can hold a name are read; of the others, only those opening with a place or group word (a
    # sentence-opening word is asked about alone, once: a line of just that word is read that way).
    asked = set(detector._ner._openers)
    for line in with_letters:
        inside, openers = ner_module.name_capitals(line)
        flagged = any(detector._ner._is_place_or_group(w) for w in openers)
        assert (line in read) == (inside or flagged or line in asked), line
    assert len(read) < 0.8 * len(with_letters), "most lines of a support corpus hold no name"
    detector.detect_many(texts[:5])
    assert len(seen) == len(set(seen)), "texts seen in an earlier batch come from the cache"
    # A new text made of lines seen before is analysed by the registry, but spaCy reads none of it again.
    multi = next(t for t in texts[:5] if t.count("\n") >= 2)
    again = "\n".join(multi.split("\n")[::-1])
    assert again not in texts
    before = len(seen)
    assert detector.detect(again) == presidio_per_text(detector, again)
    assert len(seen) == before


@pytest.mark.parametrize(
    ("line", "read"),
    [
        ("Thanks for the quick update.", False),  # a capital opening a sentence says nothing
        ("ok great, thank you", False),
        ("Hi, sure, done!", False),
        ("Hi. Sure. Done!", False),  # stoplisted words ("hi", "sure"): never part of a reported name
        ("I think Team Billing can help.", False),
        ("I spoke with Ingrid Moreau from billing.", True),
        ("Ingrid called. Moreau answered.", False),  # lone capitalised words opening sentences: never a name
        ("Dr. Smith called back.", True),  # two capitalised words in a row may be one name
        ("Regards, Tomasz", True),
        ("Spanish customers get the invoice in Euro.", True),
        ("Germans asked first.", True),  # a group word opening the sentence: read whole
        ("Paris is where the parcel waits.", True),  # a place: read whole
    ],
)
def test_a_line_is_read_when_it_may_hold_a_name_a_place_or_a_group(
    ner_detector: Detector, line: str, read: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ner_detector._ner is not None
    ner_detector._ner._lines.clear()
    seen = _spied(ner_detector, monkeypatch)
    ner_detector.detect_many([line])
    assert (line in seen) == read
    assert ner_detector.detect(line) == presidio_per_text(ner_detector, line)


def test_the_line_cache_is_bounded(
    ner_detector: Detector, texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ner_detector._ner is not None
    monkeypatch.setattr(ner_module, "LINE_CACHE_ENTRIES", 5)
    ner_detector._ner.analyze_many([f"Ticket {i} from Ingrid Moreau" for i in range(20)])
    assert len(ner_detector._ner._lines) == 5


def test_the_repeat_cache_is_bounded(
    registry: list[RegistryEntry], policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(detector_module, "CACHE_ENTRIES", 8)
    detector = Detector(registry, set(policy.floors("internal")))
    found = detector.detect_many([f"mail user{i}@example.com" for i in range(30)])
    assert [len(f) for f in found] == [1] * 30 and len(detector._cache) == 8


def test_ner_never_outranks_a_validated_detection_of_another_type() -> None:
    secret = Detection("SECRET", 10, 40, 0.75, "KeywordSecretRecognizer")
    name = Detection("PERSON", 0, 8, 0.6, "PersonNameContextRecognizer")
    ner = [
        Detection("LOCATION", 10, 50, 0.85, "SpacyRecognizer"),  # spaCy reading a key as a place: dropped
        Detection("PERSON", 0, 9, 0.85, "SpacyRecognizer"),  # a longer reading of the same name: kept
        Detection("NRP", 60, 66, 0.85, "SpacyRecognizer"),  # overlapping nothing: kept
    ]
    assert merge_ner([secret, name], ner) == ner[1:]


def test_scan_with_ner_reports_its_model_and_is_the_same_across_workers(
    tmp_path: Path, policy: Policy, texts: list[str], ner_detector: Detector
) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": t or "hi"},
                        {"role": "assistant", "content": "Thanks, noted."},
                    ]
                }
            )
            + "\n"
            for t in texts
        )
    )
    manifest = DatasetManifest(legal_basis="contract", consent_covers_training=True)
    reports = []
    for workers in (1, 2):
        options = ScanOptions(policy=policy, hash_key=b"k" * 32, workers=workers, chunk_size=7)
        result = scan_dataset(data, manifest, options, tmp_path / f"w{workers}")
        assert result.verdict == "redacted", result.blocking_reasons
        assert result.detectors.ner and result.detectors.ner_model == ner_model()
        reports.append(json.loads(result.report_path.read_text()))
    inline, parallel = reports
    assert inline["findings"] == parallel["findings"] and inline["fingerprint"] == parallel["fingerprint"]
    detectors = inline["scanner"]["detectors"]
    assert detectors["ner"] is True and detectors["ner_model_version"] and "SpacyRecognizer" in detectors["recognizers"]
    assert len(detectors["registry_sha256"]) == 64
    # The findings are the per-text detections, decided by the policy: every name spaCy found is redacted, on
    # its own or where a context recognizer's name overlaps it ("Mehmet van Haspengouw" for "van Haspengouw").
    persons = [(f["line"], f["start"], f["end"]) for f in inline["findings"] if f["entity"] == "PERSON"]
    expected = {
        (line, d.start, d.end)
        for line, text in enumerate(texts, start=1)
        for d in ner_detector.detect(text or "hi")
        if d.entity == "PERSON" and d.recognizer == "SpacyRecognizer"
    }
    assert expected
    for line, start, end in expected:
        assert any(ln == line and s < end and start < e for ln, s, e in persons), (line, start, end)


def test_ner_checks_what_the_model_tags() -> None:
    text = "pls loop in Silvia Novoa from finance re INC2618521; Cheers"
    assert refined_entity(text, "NRP", 12, 24) == "PERSON"  # a foreign name the small model calls a group
    assert refined_entity(text, "NRP", 41, 51) is None  # a ticket number is no group
    assert refined_entity("They are French.", "NRP", 9, 15) == "NRP"
    assert refined_entity(text, "PERSON", 53, 59) is None  # a sign-off


def test_spacy_vocabulary_stays_flat_over_distinct_texts(ner_detector: Detector) -> None:
    """spaCy interns every new token string for the life of the process; the memory zone around each batch
    drops them, so a long scan of distinct texts does not grow the vocabulary (memory stays flat)."""
    assert ner_detector._ner is not None
    strings = ner_detector._ner.nlp.vocab.strings

    def batch(k: int) -> list[str]:
        return [f"Zqx{k}w{i} Vbn{k}y{i} met Plk{k}r{i} in Hjt{k}u{i}." for i in range(100)]

    ner_detector._ner.analyze_many(batch(0))
    before = len(strings)
    for k in range(1, 4):
        ner_detector._ner.analyze_many(batch(k))
    assert len(strings) == before


def test_pieces_cut_lines_after_sentence_ends_but_never_inside_a_possible_name() -> None:
    text = "Thanks for waiting. I spoke with Dr. Ingrid Moreau. She will call!  Ok?\nRegards, J. Okafor"
    cut = list(ner_module.pieces(text))
    assert [piece for _, piece in cut] == [
        "Thanks for waiting.",
        "I spoke with Dr. Ingrid Moreau. She will call!",  # "Dr." and "Moreau." end in capitalised words
        "Ok?",
        "Regards, J. Okafor",
    ]
    assert all(text[offset : offset + len(piece)] == piece for offset, piece in cut)
