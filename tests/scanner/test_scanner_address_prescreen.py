"""StreetAddressRecognizer's pre-screen (its class's PRESCREEN, which the registry uses) is a necessary condition
of a street line: it matches every text the street-line regex finds something in, so gating the recognizer on
it changes no detection. Checked on Faker addresses and prose of the seven locales, both Faker corpora of
bench/support, and strings made to sit on its edges: every street word in odd case and Unicode case variants,
with and without what must follow or precede it, inside words, across other whitespace."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from faker import Faker

from bench.support import detector_benchmark, faker_corpus
from services.scanner.adapters.address_recognizers import (
    _DE_NL_SUFFIXES,
    _EN_TYPES,
    _FR_TYPES,
    _IT_ES_TYPES,
    _MILITARY_SHIPS,
    _MILITARY_UNITS,
    _RING_PAD,
    _STREET_RE,
    StreetAddressRecognizer,
    _words,
)
from services.scanner.adapters.detector import Detection, Detector, RegistryEntry

SEED = 20240607
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL")
PRESCREEN = StreetAddressRecognizer.PRESCREEN
SET_B = Path(__file__).resolve().parents[2] / "bench" / "support" / "faker_corpus_templates_b.yaml"
# Unicode characters Python's case-insensitive matching takes for ASCII letters (long s, Kelvin sign) and the
# capital sharp s: a street word spelt with them is a street word to both regexes, or to neither.
ODD_LETTERS = {"s": "ſ", "k": "\u212a", "ß": "ẞ", "e": "É", "a": "À"}


def _cases(word: str, rng: random.Random) -> list[str]:
    mixed = "".join(c.upper() if rng.random() < 0.5 else c for c in word)
    odd = "".join(ODD_LETTERS.get(c, c) for c in word)
    return sorted({word, word.upper(), word.capitalize(), word.swapcase(), mixed, odd, odd.capitalize()})


def _street_words(rng: random.Random) -> Iterator[str]:
    """Each street word of the registry's lists in a dozen settings, matching and near-missing."""
    for word in _words(_EN_TYPES):
        for w in _cases(word, rng):
            yield from (
                f"221 Baker {w}",
                f"221 Baker {w}.",
                f"1600 Pennsylvania {w}. NW, Washington, DC 20500",
                f"221 Baker {w}s ahead",
                f"221 Baker{w}",
                f"221 Baker-{w}",
                f"221 Baker\t{w}",
                f"17 3rd {w}",
                f"Flat 8, Richardson {w}",
                f"We met at {w} and then 4 more",
            )
    for word in _words(_FR_TYPES) + _words(_IT_ES_TYPES):
        for w in _cases(word, rng):
            yield from (
                f"{w} Roma 12",
                f"12 {w} de la Paix, 75002 Paris",
                f"7 bis, {w} d'Arc",
                f"5, {w} el Sol",
                f"({w} Mayor, 3)",
                f"-{w} Roma",
                f"x{w} Roma 4",
                f"é{w} Roma 4",
                f"{w}  Roma 12",
                f"{w}\u00a0Roma 12",
                f"{w}\nRoma 12",
                f"{w}, Roma 12",
                f"{w} roma 12",
                f"{w} ou 7 autres",
            )
    for word in _words(_DE_NL_SUFFIXES) + _words(_RING_PAD):
        for w in _cases(word, rng):
            yield from (
                f"Haupt{w} 5",
                f"Hohenzollern{w} 3, 50672 Köln",
                f"Wenke-Löchel-{w} 8",
                f"Ab{w} 12a",
                f"{w.capitalize()} 5",
                f"haupt{w} 5",
                f"Sp{w} 2",
                f"Haupt{w}  5",
                f"Haupt{w}\n5",
                f"Haupt{w} Nr. 5",
                f"The {w} 2024 release",
            )
    for word in _words(_MILITARY_UNITS):
        for w in _cases(word, rng):
            yield from (f"{w} 1234, Box 5678, APO AE 09204", f"{w} 12, Box 5678, DPO AP 96543", f"x{w} 1234")
    for word in _words(_MILITARY_SHIPS):
        for w in _cases(word, rng):
            yield from (f"{w} Smith, FPO AE 12345", f"{w} smith, FPO AE 12345", f"{w}\tSmith, FPO AP 96543")
    yield from (
        "",
        " ",
        "Av. Libertad 5",
        "c/ Mayor 3, 28013 Madrid",
        "C. de Alcalá 45",
        "Avda. de América 12",
        "Str. 5",
        "Bahnhofstr. 12, 10115 Berlin",
        "The Spring 2024 release fixes the export.",
        "Open Notepad 2 and the String 3 dialog.",
        "Where is my order 4711? It was due on Friday.",
        "Please send it via email 2 times.",
        "USNS Comfort, FPO AA 34090",
    )


def _faker_texts(rng: random.Random) -> Iterator[str]:
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(SEED)
        for _ in range(150):
            address = fake.address()
            yield address
            yield ", ".join(part.strip() for part in address.split("\n"))
            yield fake.street_address()
            yield f"{fake.sentence()} Ship it to {address.replace(chr(10), ', ')}. {fake.sentence()}"
            yield f"{fake.sentence(nb_words=12)} Order {rng.randint(1, 99999)} of {fake.date()}."
            yield fake.paragraph(nb_sentences=3)
            # The same address with its case or its spaces disturbed: near misses on every side of the gate.
            disturbed = "".join(c.swapcase() if rng.random() < 0.2 else c for c in address)
            yield disturbed
            yield address.replace(" ", "  ", 1).replace("\n", " ")


def _corpus_texts() -> Iterator[str]:
    for record in faker_corpus.generate_corpus(150, seed=SEED):
        yield record.text
    for record in faker_corpus.generate_corpus(100, seed=SEED + 1, templates=faker_corpus.load_templates(SET_B)):
        yield record.text
    for labelled in detector_benchmark.generate_corpus(300, seed=SEED):
        yield labelled.text


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rng = random.Random(SEED)
    return list(dict.fromkeys([*_street_words(rng), *_faker_texts(rng), *_corpus_texts()]))


def test_the_prescreen_matches_wherever_a_street_line_does(texts: list[str]) -> None:
    missed = [t for t in texts if _STREET_RE.search(t) is not None and PRESCREEN.search(t) is None]
    assert missed == []
    # The corpus has both sides of the gate, and texts it lets through that hold no street line (near misses).
    streets = sum(1 for t in texts if _STREET_RE.search(t))
    passed = sum(1 for t in texts if PRESCREEN.search(t))
    assert streets > 3000
    assert len(texts) - passed > 3000
    assert passed - streets > 500


def test_gated_and_ungated_detections_are_the_same(texts: list[str]) -> None:
    recognizer = StreetAddressRecognizer()
    entities = {"STREET_ADDRESS"}
    gated = Detector([RegistryEntry(recognizer, PRESCREEN, 0)], entities)
    ungated = Detector([RegistryEntry(recognizer, None, 0)], entities)

    def found(detector: Detector) -> list[list[Detection]]:
        return [detector._patterns(text) for text in texts]  # no repeat cache: every text analysed

    assert found(gated) == found(ungated)


def test_the_registry_gates_the_recognizer_on_its_class_prescreen(registry: list[RegistryEntry]) -> None:
    entry = next(e for e in registry if e.recognizer.name == "StreetAddressRecognizer")
    assert entry.prescreen is PRESCREEN
    assert entry.window == 0


@pytest.mark.parametrize(
    "text",
    [
        "Where is my order 4711? It was due on Friday.",
        "Ticket #55312 is still open since 2024-03-02, please escalate.",
        "I bought 3 items for 49.99 and want a refund of 2 of them.",
        "Error 500 on the checkout page after 12 retries.",
    ],
)
def test_prompts_with_numbers_but_no_street_word_skip_the_recognizer(text: str) -> None:
    assert PRESCREEN.search(text) is None


def test_street_word_lists_must_be_literal_words() -> None:
    assert _words(r"rue|av\.|avda\.?") == ["rue", "av.", "avda", "avda."]
    with pytest.raises(ValueError, match="not a literal street word"):
        _words(r"rue|str(?:asse)?")
