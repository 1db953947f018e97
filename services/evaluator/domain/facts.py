"""Closed-book answers judged without a judge model: the key facts of a reference answer (JSON leaf values;
numbers and proper names of free text) and whether an output states them; whether an output abstains
("I don't know"); whether it answers confidently; and the named entities of a question, so a question about
something that is in the data can be turned into one about something that is not. Pure functions."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from services.evaluator.domain.text_metrics import normalise_whitespace
from shared.json_input import parse_json

ConfidenceRule = Literal["no_abstention", "likelihood", "both"]

# Function words: never a name (not even capitalised at the start of a sentence), never a key fact.
STOPWORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "if", "then", "so", "of", "to", "in", "on", "at", "by", "for", "from",
    "with", "about", "as", "into", "over", "under", "than", "that", "this", "these", "those", "there", "here",
    "it", "its", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "have", "has", "had",
    "will", "would", "can", "could", "should", "may", "might", "must", "shall", "not", "no", "yes", "we", "you",
    "your", "yours", "our", "ours", "i", "me", "my", "he", "him", "his", "she", "her", "they", "them", "their",
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "please", "thank", "thanks", "dear",
    "hello", "hi", "regards", "best", "sincerely", "kind",
})
MAX_SHORT_STRING_FACT = 40
"""A JSON string value up to this many characters is one fact; a longer one contributes its salient words."""

_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,:]\d+)*(?![\w])")
_NAME_WORD = r"[A-Z][a-z]+(?:['’-][A-Za-z]+)*"
_NAME_RUN = re.compile(rf"(?<![\w-]){_NAME_WORD}(?:\s+{_NAME_WORD})*")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
_WORD_OR_NUMBER = re.compile(r"\w+")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str


def _unique(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        key = value.casefold()
        if value and key not in seen:
            seen.add(key)
            out.append(value)
    return out


def _json_leaves(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _json_leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_leaves(item)
    else:
        yield value


class FactExtractor:
    """What an answer must state to agree with a reference answer of the data.

    A JSON reference: its leaf values (numbers as written, short strings whole, long strings by their
    salient words; booleans and nulls say too little). Free text: its numbers, and the names and words that
    set it apart from the other answers in the data: those in at most `max_share` of them ('finance' and
    'Dublin' in 'The finance team in Dublin.', when every answer reads 'The ... team in ...'). With too few
    answers to tell (< MIN_ANSWERS_FOR_SHARES), its numbers and proper names, else its longer words."""

    MIN_ANSWERS_FOR_SHARES = 4

    def __init__(self, answers: Sequence[str], *, max_facts: int = 8, max_share: float = 0.5) -> None:
        self.max_facts = max_facts
        self.max_share = max_share
        self._answers = len(answers)
        self._frequency: dict[str, int] = {}
        for answer in answers:
            for word in {w.casefold() for w in _WORD_OR_NUMBER.findall(answer)}:
                self._frequency[word] = self._frequency.get(word, 0) + 1

    def _share(self, phrase: str) -> float:
        words = [w.casefold() for w in _WORD_OR_NUMBER.findall(phrase)]
        if not words or not self._answers:
            return 0.0
        return min(self._frequency.get(w, 0) for w in words) / self._answers

    def facts(self, reference: str) -> list[str]:
        try:
            parsed = parse_json(reference)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict | list):
            found: list[str] = []
            for leaf in _json_leaves(parsed):
                if isinstance(leaf, bool) or leaf is None:
                    continue
                if isinstance(leaf, int | float):
                    found.append(json.dumps(leaf))
                elif isinstance(leaf, str) and leaf.strip():
                    text = leaf.strip()
                    found.extend([text] if len(text) <= MAX_SHORT_STRING_FACT else self._free_text(text))
            return _unique(found)[:self.max_facts]
        return self._free_text(reference)

    def _free_text(self, text: str) -> list[str]:
        numbers = [(m.start(), m.group(0)) for m in _NUMBER.finditer(text)]
        names = [(s.start, s.text) for s in name_spans(text, drop_sentence_initial=False)]
        if self._answers < self.MIN_ANSWERS_FOR_SHARES:
            found = numbers + names
            if not found:
                found = [(m.start(), m.group(0)) for m in _WORD.finditer(text)
                         if len(m.group(0)) >= 5 and m.group(0).lower() not in STOPWORDS]
        else:
            covered = [(start, start + len(name)) for start, name in names]
            words = [(m.start(), m.group(0)) for m in _WORD.finditer(text)
                     if m.group(0).lower() not in STOPWORDS and len(m.group(0)) >= 3
                     and not any(lo <= m.start() < hi for lo, hi in covered)]
            found = numbers + [(start, value) for start, value in names + words
                               if self._share(value) <= self.max_share]
        return _unique(value for _, value in sorted(found))[:self.max_facts]


def key_facts(reference: str, *, max_facts: int = 8) -> list[str]:
    """The facts of one reference judged on its own (no other answers to compare it with)."""
    return FactExtractor([], max_facts=max_facts).facts(reference)


def _fold(text: str) -> str:
    return normalise_whitespace(text.replace("’", "'")).casefold()


def states(output: str, fact: str) -> bool:
    """`fact` occurs in `output` as whole words (case and whitespace aside): '5' is not stated by '15'."""
    pattern = r"(?<!\w)" + re.escape(_fold(fact)) + r"(?!\w)"
    return re.search(pattern, _fold(output)) is not None


def fact_recall(output: str, facts: Sequence[str]) -> float | None:
    """Share of `facts` that `output` states; None when there is nothing to check."""
    if not facts:
        return None
    return sum(states(output, fact) for fact in facts) / len(facts)


class AbstentionDetector:
    """An output abstains when it contains one of the configured phrases (case-insensitive, whole words,
    typographic apostrophes folded): 'I don't know', 'no information', ..."""

    def __init__(self, phrases: Sequence[str]) -> None:
        folded = sorted({_fold(p) for p in phrases if p.strip()}, key=len, reverse=True)
        self._pattern = (re.compile(r"(?<!\w)(?:" + "|".join(re.escape(p) for p in folded) + r")(?!\w)")
                         if folded else None)

    def abstains(self, output: str) -> bool:
        return self._pattern is not None and self._pattern.search(_fold(output)) is not None


def is_confident(output: str, *, abstained: bool, mean_logprob: float | None, rule: ConfidenceRule,
                 min_mean_logprob: float) -> bool:
    """A confident answer says something, and (per `rule`) does not abstain, or is likely under the model
    that wrote it (mean token log-probability at least `min_mean_logprob`), or both. An empty output is
    never confident: nothing was asserted. A mean log-probability that is not a finite number (NaN, +/-inf:
    the model's scores are broken) counts as confident under every rule: `nan >= min` is False, so unguarded
    it would read as "unsure" and a model producing NaN would pass as one that never fabricates."""
    if mean_logprob is not None and not math.isfinite(mean_logprob):
        return True
    if not output.strip():
        return False
    answers = not abstained
    sure = mean_logprob is not None and mean_logprob >= min_mean_logprob
    if rule == "no_abstention":
        return answers
    if rule == "likelihood":
        return sure
    return answers and sure


def name_spans(text: str, *, drop_sentence_initial: bool = True) -> list[Span]:
    """Runs of capitalised words that name something ('Ada Berg', 'Lisbon'), leading stopwords removed
    ('Which Ada Berg' -> 'Ada Berg'). With `drop_sentence_initial`, a single capitalised word that opens a
    sentence is not a name ('Extract the order' - any word is capitalised there); all-caps acronyms are not
    names either (JSON, EUR)."""
    spans: list[Span] = []
    for match in _NAME_RUN.finditer(text):
        words = list(re.finditer(_NAME_WORD, match.group(0)))
        while words and words[0].group(0).lower() in STOPWORDS:
            words.pop(0)
        if not words:
            continue
        start = match.start() + words[0].start()
        end = match.start() + words[-1].end()
        before = text[:start].rstrip()
        sentence_initial = not before or before[-1] in ".!?\n" or before.endswith(("\"", "'"))
        if drop_sentence_initial and len(words) == 1 and sentence_initial and start == match.start():
            continue
        spans.append(Span(start, end, text[start:end]))
    return spans


def replace_spans(text: str, spans: Sequence[Span], replacements: Sequence[str]) -> str:
    """`text` with each span replaced by its replacement (spans must not overlap)."""
    out: list[str] = []
    cursor = 0
    for span, replacement in sorted(zip(spans, replacements, strict=True), key=lambda pair: pair[0].start):
        if span.start < cursor:
            raise ValueError("overlapping spans")
        out.append(text[cursor:span.start])
        out.append(replacement)
        cursor = span.end
    out.append(text[cursor:])
    return "".join(out)


def entity_dependent(prompts: Sequence[str], answers: Sequence[str]) -> list[bool]:
    """For each prompt: does the data ask the same question (its names masked) about other names and get a
    different answer? Then the answer depends on who is named, and the question asked about a name the data
    never mentions has no answer in the data. ('Which team handles <name>?' with different teams: yes; a
    return decided by its reason whatever the customer's name: no.)"""
    def masked(text: str) -> str:
        spans = name_spans(text)
        return replace_spans(text, spans, ["\0"] * len(spans)) if spans else text

    keys = [masked(p) for p in prompts]
    answers_by_key: dict[str, set[str]] = {}
    for key, answer in zip(keys, answers, strict=True):
        if "\0" in key:
            answers_by_key.setdefault(key, set()).add(normalise_whitespace(answer))
    return [len(answers_by_key.get(key, ())) >= 2 for key in keys]
