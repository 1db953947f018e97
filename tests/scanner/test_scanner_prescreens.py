"""Keyword pre-screens compiled to a trie: the same answers as the flat alternation, at a fraction of the cost
(bench/scanner_prescreen.py measures it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.scanner.adapters.detector import RegistryEntry, RegistryError, load_registry
from services.scanner.adapters.prescreens import word_prefix_regex

WORDS = ["hi", "hello", "call", "this is", "i'm", "m.", "good morning", "écrit", "señor", "by"]
TEXTS = [
    "Hello there",
    "HI!",
    "history lesson",  # prefix: "hi" at a word start
    "chi-square",  # "hi" inside a word is no word start
    "Callback at noon",
    "recall it",
    "This is Maria",
    "thisis nothing",
    "I'm late",
    "im late",
    "M. Dupont",
    "Good  morning",  # two spaces: not the keyword
    "il a écrit hier",
    "décrit",
    "Señora Ruiz",
    "nearby shop",
    "by the way",
    "",
]


def flat(words: list[str]) -> re.Pattern[str]:
    return re.compile(r"(?i)\b(?:" + "|".join(re.escape(w) for w in words) + ")")


@pytest.mark.parametrize("text", TEXTS)
def test_trie_prescreen_matches_what_the_flat_alternation_matches(text: str) -> None:
    expected = flat(WORDS).search(text)
    found = word_prefix_regex(WORDS).search(text)
    assert (found and found.span()) == (expected and expected.span())


def test_trie_prescreen_takes_no_empty_list() -> None:
    with pytest.raises(ValueError, match="at least one word"):
        word_prefix_regex([])


def test_the_name_recognizer_prescreen_is_a_word_trie(registry: list[RegistryEntry]) -> None:
    entry = next(e for e in registry if e.recognizer.name == "PersonNameContextRecognizer")
    assert entry.prescreen is not None
    assert entry.prescreen.search("Regards,\nTomasz Okafor")
    assert entry.prescreen.search("I spoke with Ingrid Moreau")
    assert entry.prescreen.search("Order 4417-22 shipped on 2024-03-02, weight 2.4 kg") is None


def test_registry_rejects_bad_prescreen_words(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    spec = (
        "recognizers:\n  - name: JwtRecognizer\n    type: class\n"
        "    class: services.scanner.adapters.recognizers:JwtRecognizer\n"
    )
    path.write_text(spec + '    prescreen_words: [eyj]\n    prescreen: "eyJ"\n')
    with pytest.raises(RegistryError, match="prescreen or prescreen_words, not both"):
        load_registry(path)
    path.write_text(spec + "    prescreen_words: []\n")
    with pytest.raises(RegistryError, match="non-empty list of words"):
        load_registry(path)
    path.write_text(spec + "    prescreen_words: [eyj]\n")
    assert load_registry(path)[0].prescreen.search("token eyJhbGciOi")  # type: ignore[union-attr]
