"""The Faker evaluation corpus (bench/support/faker_corpus.py) and its scoring: deterministic for a seed,
gold spans exact, decoys never gold, recall/precision computed as defined. The scanner's own figures on
this corpus are reported by bench/scanner_recall.py, not asserted here."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import phonenumbers
import pytest

from bench.support.detector_benchmark import Planted
from bench.support.faker_corpus import (
    DECOYS,
    ENTITIES,
    LOCALES,
    NATIONAL_IDS,
    REGION,
    CorpusRecord,
    DecoySpan,
    generate_corpus,
    load_templates,
)
from bench.support.faker_corpus_scoring import score_corpus

SEED = 11


@pytest.fixture(scope="module")
def corpus() -> list[CorpusRecord]:
    return generate_corpus(400, seed=SEED)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _iban_ok(value: str) -> bool:
    compact = value.replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def test_same_seed_same_corpus_other_seed_other_corpus(corpus: list[CorpusRecord]) -> None:
    assert generate_corpus(400, seed=SEED) == corpus
    assert [r.text for r in generate_corpus(400, seed=SEED + 1)] != [r.text for r in corpus]


def test_corpus_covers_every_locale_kind_entity_and_decoy(corpus: list[CorpusRecord]) -> None:
    assert {r.locale for r in corpus} == set(LOCALES)
    assert {r.kind for r in corpus} == {"email", "ticket", "chat"}
    assert {g.entity for r in corpus for g in r.gold} == set(ENTITIES)
    assert {d.kind for r in corpus for d in r.decoys} == set(DECOYS)
    for record in corpus:  # a national id only ever appears in its own locale
        national = {g.entity for g in record.gold} - {
            e for e in ENTITIES if not any(e in v for v in NATIONAL_IDS.values())
        }
        assert national <= set(NATIONAL_IDS.get(record.locale, ())), (record.locale, national)


def test_spans_are_exact_the_text_is_the_template_with_values_in_the_slots(corpus: list[CorpusRecord]) -> None:
    """Put the slot names back where the spans say the values are: every line must be a template line
    verbatim. A span off by one character anywhere would leave a line no template has."""
    _assert_every_line_is_a_template_line(corpus, load_templates())


def _assert_every_line_is_a_template_line(corpus: list[CorpusRecord], templates: dict[str, Any]) -> None:
    lines = {t for k in templates["kinds"].values() for part in ("openings", "closings") for t in k[part]}
    lines |= {t for body in templates["body"].values() for t in body}
    lines |= {t for native in templates["native"].values() for body in native.values() for t in body}
    allowed = {piece for t in lines for piece in t.split("\n")}
    for record in corpus:
        spans = sorted(
            [(g.start, g.end, g.entity) for g in record.gold] + [(d.start, d.end, d.kind) for d in record.decoys]
        )
        text, pos = "", 0
        for start, end, name in spans:
            assert start >= pos, f"overlapping spans in {record.text!r}"
            value = record.text[start:end]
            assert value and value == value.strip(), (name, value)
            text += record.text[pos:start] + "{" + name + "}"
            pos = end
        text += record.text[pos:]
        for line in text.split("\n"):
            assert line in allowed, f"not a template line: {line!r}"


def test_gold_values_are_valid_for_their_type(corpus: list[CorpusRecord]) -> None:
    checked: Counter[str] = Counter()
    for record in corpus:
        for g in record.gold:
            value = record.text[g.start : g.end]
            if g.entity == "CREDIT_CARD":
                assert _luhn_ok(re.sub(r"[ -]", "", value)), value
            elif g.entity == "IBAN_CODE":
                assert _iban_ok(value), value
            elif g.entity == "PHONE_NUMBER":
                assert phonenumbers.is_valid_number(phonenumbers.parse(value, REGION[record.locale])), value
            elif g.entity == "EMAIL_ADDRESS":
                assert re.fullmatch(r"[\w.+-]+@[\w-]+(\.[\w-]+)+", value), value
            elif g.entity == "AWS_ACCESS_KEY":
                assert re.fullmatch(r"A[KS]IA[A-Z2-7]{16}", value), value
            elif g.entity == "JWT":
                assert value.startswith("eyJ") and value.count(".") == 2, value
            elif g.entity == "DATE_OF_BIRTH":  # Faker's date_of_birth(18..90 years): a four-digit year in range
                [year] = [int(y) for y in re.findall(r"\d{4}", value)]
                assert 1900 < year <= date.today().year - 17, value
            else:
                continue
            checked[g.entity] += 1
    assert min(checked.values()) >= 20 and len(checked) == 7, checked


def test_decoys_carry_no_gold_span(corpus: list[CorpusRecord]) -> None:
    decoys = 0
    for record in corpus:
        for d in record.decoys:
            decoys += 1
            assert d.kind not in ENTITIES
            assert not any(g.start < d.end and d.start < g.end for g in record.gold), (d, record.text)
    assert decoys >= 150


def test_scoring_counts_overlaps_of_the_same_type_and_decoy_hits_as_false_positives() -> None:
    text = "Mail ann@corp.local or call 020 7946 0018, order #12345678, SSN 123-45-6789."
    record = CorpusRecord(
        text,
        "email",
        "en_GB",
        gold=[Planted("EMAIL_ADDRESS", 5, 19), Planted("PHONE_NUMBER", 28, 41), Planted("US_SSN", 64, 75)],
        decoys=[DecoySpan("ORDER_NUMBER", 49, 58)],
    )
    other = CorpusRecord("Regards, Bo", "email", "en_US", gold=[Planted("PERSON", 9, 11)])
    detections = [
        [
            ("EMAIL_ADDRESS", 9, 19),  # partial overlap, same type: true positive
            ("PHONE_NUMBER", 28, 41),  # exact: true positive
            ("PHONE_NUMBER", 50, 58),  # on the decoy: false positive
            ("CREDIT_CARD", 64, 75),  # on the SSN but the wrong type: false positive, SSN missed
        ],
        [],
    ]
    scores = score_corpus([record, other], detections)
    rows = {row["type"]: row for row in scores.rows()}
    assert set(rows) == {"EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "PERSON"}
    assert (rows["EMAIL_ADDRESS"]["recall"], rows["EMAIL_ADDRESS"]["precision"]) == (1.0, 1.0)
    assert (rows["PHONE_NUMBER"]["gold"], rows["PHONE_NUMBER"]["found"], rows["PHONE_NUMBER"]["detections"]) == (
        1,
        1,
        2,
    )
    assert (rows["PHONE_NUMBER"]["recall"], rows["PHONE_NUMBER"]["precision"]) == (1.0, 0.5)
    assert (rows["US_SSN"]["recall"], rows["US_SSN"]["detections"]) == (0.0, 0)
    assert (rows["CREDIT_CARD"]["gold"], rows["CREDIT_CARD"]["precision"]) == (0, 0.0)
    assert (rows["PERSON"]["recall"], rows["PERSON"]["precision"]) == (0.0, 1.0)  # nothing detected, nothing wrong
    assert scores.recall == pytest.approx(2 / 4)
    assert scores.precision == pytest.approx(2 / 4)
    assert (scores.decoys, scores.decoy_hits) == (1, 1)


def test_templates_with_an_unknown_slot_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text('version: 1\nkinds: {chat: {openings: ["hi {NAME}"], closings: ["bye"]}}\nbody: {}\n')
    with pytest.raises(ValueError, match="unknown slots"):
        load_templates(path)


def test_templates_without_body_lines_for_an_entity_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "templates.yaml"
    path.write_text('version: 1\nkinds: {chat: {openings: ["hi"], closings: ["bye"]}}\nbody: {PERSON: ["{PERSON}"]}\n')
    with pytest.raises(ValueError, match=r"no body lines for .*EMAIL_ADDRESS"):
        load_templates(path)


SET_B = Path(__file__).resolve().parents[2] / "bench" / "support" / "faker_corpus_templates_b.yaml"


def test_independent_template_set_b_yields_gold_spans_of_every_type_and_every_decoy() -> None:
    """Set B (written without reading the recognizers or set A) loads and plants every entity type the corpus
    module declares, each value exactly where its gold span says, national ids only in their own locale."""
    templates = load_templates(SET_B)
    corpus = generate_corpus(400, seed=SEED, templates=templates)
    assert {r.kind for r in corpus} == set(templates["kinds"])
    assert {g.entity for r in corpus for g in r.gold} == set(ENTITIES)
    assert {d.kind for r in corpus for d in r.decoys} == set(DECOYS)
    national = {e for ids in NATIONAL_IDS.values() for e in ids}
    for record in corpus:
        assert {g.entity for g in record.gold} & national <= set(NATIONAL_IDS.get(record.locale, ()))
        for g in record.gold:
            value = record.text[g.start : g.end]
            assert value and value == value.strip() and "\n" not in value, (g.entity, value)
    _assert_every_line_is_a_template_line(corpus, templates)
