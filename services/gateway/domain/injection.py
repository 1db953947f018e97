"""Prompt-injection and jailbreak heuristics: a small, pure scorer over known attack shapes.

Each signal is a regular expression over a canonical form of the prompt (case-folded, curly quotes made
straight, whitespace collapsed) with a weight in (0, 1): roughly the chance that a prompt showing it is an
attack. Signals combine like independent evidence, score = 1 - prod(1 - weight), so one strong shape
("ignore all previous instructions", "you are DAN") crosses the default threshold of 0.5 on its own, while
weak ones that benign prompts also show ("start your reply with", "just say") need company.

Obfuscated text is decoded and scored too: base64 and hex blobs that decode to readable text, and
leetspeak ("1gn0r3 4ll pr3v10u5 1n57ruc710n5"); an obfuscated instruction blob is itself a signal, because
a support prompt has no reason to carry one.

A heuristic like this catches the known shapes (garak's dan / promptinject / encoding families, the
red-team probe set) at microsecond cost, and misses attacks worded freshly; a classifier model would do
better at milliseconds of cost, which is why the check is one plug-in among others and the threshold is
per policy."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from re import _constants as _sre
from re import _parser as _sre_parser

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})

_DET = r"(?:(?:all|any|every|each)\s+(?:of\s+)?)?(?:(?:the|your|these|those|its)\s+)?"
_ADJ = r"(?:[a-z\-]+\s+)?(?:and\s+[a-z\-]+\s+)?"
_RULES = (r"(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails|constraints|"
          r"polic(?:y|ies)|programming)")

SIGNALS: tuple[tuple[str, float, re.Pattern[str]], ...] = tuple(
    (name, weight, re.compile(pattern))
    for name, weight, pattern in (
        # Instruction override (garak promptinject, "ignore previous instructions" in all its wordings).
        ("ignore_instructions", 0.9,
         rf"\b(?:ignore|disregard|forget|override|bypass|abandon)\s+{_DET}{_ADJ}{_RULES}\b"),
        ("new_instructions", 0.8,
         r"\bnew\s+(?:instructions?|rules|task)\s+(?:from|by)\s+(?:the\s+)?(?:administrator|admin|system|developer|openai|operator)"),
        ("fake_system_turn", 0.8,
         r"(?:^|\n|\s)\[(?:system|admin|administrator|developer|sys)\]|<\|?(?:im_start|system|endoftext)\|?>"
         r"|#{2,}\s*(?:system|new instructions)"),
        ("only_task_now", 0.4, r"\byour\s+(?:only|new|sole)\s+(?:task|job|goal|purpose)\s+(?:now\s+)?is\b"),
        ("stop_everything", 0.4, r"\bstop\s+everything\b|\bforget\s+everything\b"),
        ("just_print", 0.35, r"\bjust\s+(?:print|say|output|write|reply\s+with|respond\s+with)\s*[\"':]"),
        # Personas and jailbreak modes (garak dan).
        ("dan", 0.9, r"\bdo\s+anything\s+now\b|\byou\s+are\s+(?:now\s+)?dan\b|\bas\s+dan\b|\bdan\s+mode\b|\bdan:"),
        ("developer_mode", 0.7, r"\b(?:developer|debug|god|jailbr(?:eak|oken))\s+mode\b"),
        ("no_restrictions", 0.7,
         r"\b(?:no|without(?:\s+any)?|free\s+of|broken\s+free\s+of|not\s+bound\s+by|ignores?\s+(?:every|all|any))\s+"
         r"(?:[a-z]+\s+){0,3}(?:restrictions?|filters?|censorship|content\s+polic(?:y|ies)|confines|"
         r"ethical|moral|ethics|morals|safety\s+(?:guidelines|rules))\b"),
        ("need_not_follow_rules", 0.7,
         r"\b(?:does\s+not|doesn't|do\s+not|don't|never)\s+(?:have\s+to\s+)?(?:follow|obey|abide\s+by)\s+(?:any\s+)?"
         r"(?:rules|guidelines|polic(?:y|ies)|restrictions)"),
        ("pretend_unrestricted", 0.8,
         r"\b(?:pretend|imagine|act\s+as\s+if|behave\s+as\s+if)\b.{0,40}\b(?:no|without|free\s+from|unrestricted|"
         r"unfiltered|jailbroken|not\s+an\s+ai|evil)\b"),
        ("unfiltered_persona", 0.6, r"\b(?:unfiltered|uncensored|amoral|unrestricted|jailbroken|machiavellian)\b"),
        ("deceased_relative", 0.6,
         r"\b(?:late|dead|deceased)\s+(?:grand(?:mother|ma|father|pa)|granny|mother|father)\b"),
        ("persona_switch", 0.3,
         r"\b(?:from\s+now\s+on\s+you|you\s+are\s+now|act\s+as\s+(?:my|a|an)|pretend\s+to\s+be|role-?play\s+as|"
         r"answer\s+only\s+as|stay\s+in\s+character)\b"),
        # Refusal suppression and forced openers.
        ("never_refuse", 0.45,
         r"\b(?:never|do\s+not|don't|must\s+not|will\s+not|won't)\s+(?:ever\s+)?(?:refuse|decline|apologi[sz]e|"
         r"warn|add\s+(?:any\s+)?warnings?|include\s+any\s+(?:note|disclaimer|warning))"
         r"|\bnever\s+(?:refuses|declines|adds\s+warnings)"),
        ("forbidden_words", 0.45, r"\bnever\s+(?:say|use)\s+the\s+words?\b"),
        ("forced_opener", 0.35,
         r"\b(?:start|begin|prefix|open)\w*\s+(?:your\s+|every\s+|each\s+)?(?:answer|reply|response|output|message)s?"
         r"\s+with\s*[\"']"),
        # System prompt and secret exfiltration.
        ("system_prompt_leak", 0.85,
         r"\b(?:reveal|show|print|repeat|output|display|tell\s+me|what\s+(?:is|are|was|were)|give\s+me|leak|dump|"
         r"recite|disclose)\b.{0,30}\b(?:your|the)\s+(?:system\s+prompt|system\s+message|(?:initial|hidden|original|"
         r"secret)\s+(?:prompt|instructions)|pre-?prompt|instructions\s+above|prompt\s+above)"),
        ("repeat_above", 0.6, r"\brepeat\s+(?:everything|all|the\s+(?:text|words))\s+(?:above|before)"),
        ("configured_secret", 0.8,
         r"\b(?:api\s+key|access\s+token|token|password|secret|credentials?|deploy\s+key|private\s+key)\b.{0,40}"
         r"\b(?:you\s+were\s+(?:configured|given|provided|trained)|(?:in|from|of)\s+your\s+training\s+data)"),
        ("training_data_replay", 0.7,
         r"\b(?:exactly\s+as\s+it\s+appeared|verbatim)\b.{0,40}\btraining\b|\bappeared\s+in\s+your\s+training\s+data\b"),
        ("admin_credentials", 0.6,
         r"\b(?:password|credentials?|api\s+key|token)\s+(?:of|for)\s+the\s+(?:admin|administrator|root)\b"),
        ("claims_authority", 0.35,
         r"\bi\s+am\s+(?:the|your)\s+(?:administrator|admin|developer|creator|owner)\b"),
        ("ignore_confidentiality", 0.6, r"\bignore\s+(?:your\s+)?(?:confidentiality|privacy|safety)\b"),
        # Obfuscation asked for by name.
        ("decode_request", 0.35,
         r"\b(?:base64|base\s*64|rot13|hex|leetspeak|l33t)\b.{0,40}\b(?:decod|encod|string|message)|\bdecode\s+the\s+following\b"),
    )
)

OBFUSCATED_BLOB = 0.6
"""Weight of an encoded blob that decodes to readable text."""
LEETSPEAK_TEXT = 0.55
"""Weight of a prompt written largely in leetspeak."""

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}){10,}\b")
_WORD = re.compile(r"[^\W_]+")
_LEET = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEET_DIGITS = set("013457")
# A leet word (see _is_leet_word) has a letter and digits that all are leet digits, so somewhere in it a leet
# digit is next to a non-digit word character ([^\W\d_]: letters, and numerals such as "½" that are not decimal
# digits). A text without such a pair has no leet word, and no single leet digit next to one: plain numbers
# ("order 4711", "0151 2345", "12.03.2024") skip the per-word checks. Searched from the digit so `re` can
# skip ahead to the next leet digit.
_LEET_CANDIDATE = re.compile(r"[013457](?:(?=[^\W\d_])|(?<=[^\W\d_][013457]))")
MAX_DECODED_BLOBS = 8
"""Blobs decoded per prompt at most: a prompt of thousands of blobs costs no more than eight."""


@dataclass(frozen=True, slots=True)
class InjectionScore:
    score: float
    signals: tuple[str, ...]
    """Names of the signals seen (never the prompt's words)."""


def canonical(text: str) -> str:
    return " ".join(text.translate(_QUOTES).casefold().split())


def _required_substrings(items: _sre_parser.SubPattern | list) -> frozenset[str] | None:
    """Strings of which every match of a parsed pattern (or part of one) contains at least one, or None when
    no such set is known. Sound by construction: a run of literals is matched as is; a group or a repeat of
    at least one needs what its body needs; an alternation needs one of what its branches need; anything
    else (classes, anchors, flags, optional parts) is taken to need nothing."""
    candidates: list[frozenset[str]] = []
    run = ""
    for op, av in [*items, (None, None)]:  # the sentinel flushes the last run of literals
        if op is _sre.LITERAL:
            run += chr(av)
            continue
        if run:
            candidates.append(frozenset({run}))
            run = ""
        needed: frozenset[str] | None = None
        if op is _sre.SUBPATTERN and not av[1] and not av[2]:  # (group, add_flags, del_flags, body)
            needed = _required_substrings(av[3])
        elif op is _sre.BRANCH:
            branches = [_required_substrings(branch) for branch in av[1]]
            if all(branch is not None for branch in branches):
                needed = frozenset().union(*branches)
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) and av[0] >= 1:  # (min, max, body)
            needed = _required_substrings(av[2])
        if needed:
            candidates.append(needed)
    # Any candidate is sound; the one whose shortest string is longest rejects the most prompts.
    best = max(candidates, key=lambda strings: min(map(len, strings)), default=None)
    if best is None:
        return None
    # A string holding another of the set is redundant: the text holds the shorter one too.
    return frozenset(s for s in best if not any(t != s and t in s for t in best))


def _gate(pattern: re.Pattern[str]) -> frozenset[str] | None:
    if pattern.flags & re.IGNORECASE:  # literals would match in either case; take no gate
        return None
    try:
        return _required_substrings(_sre_parser.parse(pattern.pattern, pattern.flags))
    except Exception:  # re._parser is private: should it change, a signal without a gate is always searched
        return None


# Speed: most prompts show no signal, and 25 regex searches over every prompt cost more than the rest of the
# scoring together (a single alternation of all patterns is no cheaper: `re` tries each branch at every
# position). So each signal is gated by the strings its pattern needs ("ignore", "disregard", ... for
# ignore_instructions), derived from the pattern itself so that SIGNALS stays the one place where a signal is
# defined; a substring test is far cheaper than a regex search, and a pattern is searched only when the text
# holds one of its strings. Exact: a text without any of them cannot match the pattern.
_GATED_SIGNALS: tuple[tuple[str, float, re.Pattern[str], frozenset[str] | None], ...] = tuple(
    (name, weight, pattern, _gate(pattern)) for name, weight, pattern in SIGNALS
)
_GATE_STRINGS: tuple[str, ...] = tuple(sorted({s for *_, gate in _GATED_SIGNALS if gate for s in gate}))


def _signals(text: str) -> dict[str, float]:
    canon = canonical(text)
    present = {s for s in _GATE_STRINGS if s in canon}
    return {
        name: weight
        for name, weight, pattern, gate in _GATED_SIGNALS
        if (gate is None or not gate.isdisjoint(present)) and pattern.search(canon)
    }


def _readable(data: bytes) -> str | None:
    """The decoded bytes as text when they read like words (mostly printable ASCII, letters, a space)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text)
    if not text or printable / len(text) < 0.95 or " " not in text.strip():
        return None
    letters = sum(ch.isalpha() for ch in text)
    return text if letters / len(text) >= 0.5 else None


def decoded_blobs(text: str) -> list[str]:
    """Readable texts hidden in base64 or hex blobs of `text`."""
    found: list[str] = []
    for match in _BASE64.finditer(text):
        blob = match.group(0)
        try:
            data = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        readable = _readable(data)
        if readable:
            found.append(readable)
        if len(found) >= MAX_DECODED_BLOBS:
            return found
    for match in _HEX.finditer(text):
        readable = _readable(bytes.fromhex(match.group(0)))
        if readable:
            found.append(readable)
        if len(found) >= MAX_DECODED_BLOBS:
            break
    return found


# Letters-and-digits words that are not leetspeak: model numbers (A350, MP3, B737X) and units (5pm, 10am, 4k).
_MODEL_NUMBER = re.compile(r"^[A-Z]{1,4}\d+[A-Z]?$")
_UNIT = re.compile(r"^\d+(?:am|pm|k|m|g|x|s|th|st|nd|rd|kg|km|mb|gb|ms)$", re.IGNORECASE)


def _is_leet_word(word: str) -> bool:
    digits = [ch for ch in word if ch.isdigit()]
    if len(word) < 3 or not digits or not all(d in _LEET_DIGITS for d in digits) or word.isdigit():
        return False
    if _MODEL_NUMBER.match(word) or _UNIT.match(word):
        return False
    return any(ch.isalpha() for ch in word)


def leetspeak_share(text: str) -> tuple[int, float]:
    """How many words are leetspeak, and their share of all words: words mixing letters with leetspeak
    digits ("h4t3", "hum4n5"), and single leet digits next to one ("1 h473": "I hate")."""
    if not _LEET_CANDIDATE.search(text):  # most prompts: no word can be leet, skip the per-word checks
        return 0, 0.0
    words = _WORD.findall(text)
    if not words:
        return 0, 0.0
    marked = [_is_leet_word(w) for w in words]
    for i, word in enumerate(words):
        if len(word) == 1 and word in _LEET_DIGITS:
            marked[i] = (i > 0 and _is_leet_word(words[i - 1])) or (i + 1 < len(words) and _is_leet_word(words[i + 1]))
    leet = sum(marked)
    return leet, leet / len(words)


def is_leetspeak(text: str) -> bool:
    """At least three leet words, and a fifth of the text or half of one line of it in leetspeak (an encoded
    payload on its own line after an innocent-looking lead-in)."""
    words, share = leetspeak_share(text)
    if words < 3:
        return False
    return share >= 0.2 or any(
        n >= 2 and line_share >= 0.5 for n, line_share in map(leetspeak_share, text.splitlines())
    )


def deleet(text: str) -> str:
    return text.translate(_LEET)


def score_injection(text: str) -> InjectionScore:
    """The prompt's injection score in [0, 1] and the signals behind it."""
    weights = _signals(text)
    for decoded in decoded_blobs(text):
        weights["obfuscated_blob"] = OBFUSCATED_BLOB
        for name, weight in _signals(decoded).items():
            weights.setdefault(f"{name}@decoded", weight)
    if is_leetspeak(text):
        weights["leetspeak"] = LEETSPEAK_TEXT
        for name, weight in _signals(deleet(text)).items():
            weights.setdefault(name, weight)
    remaining = 1.0
    for weight in weights.values():
        remaining *= 1.0 - weight
    return InjectionScore(round(1.0 - remaining, 4), tuple(sorted(weights)))
