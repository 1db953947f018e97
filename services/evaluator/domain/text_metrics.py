"""Comparisons of model outputs as text: exact match against a reference, how far two outputs diverge
(token Jaccard distance, normalised edit distance), masking the values a probe varied so they do not count
as divergence, and the frame a set of prompts share. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

Divergence = Literal["jaccard", "edit"]

_TOKEN = re.compile(r"\w+|[^\w\s]")


def normalise_whitespace(text: str) -> str:
    """Runs of whitespace (newlines, tabs) become one space; leading and trailing whitespace goes."""
    return " ".join(text.split())


def exact_match(output: str, reference: str) -> bool:
    return normalise_whitespace(output) == normalise_whitespace(reference)


def word_tokens(text: str) -> list[str]:
    """Case-folded words and single punctuation marks: what two outputs are compared on."""
    return _TOKEN.findall(text.casefold())


def jaccard_distance(a: Sequence[str], b: Sequence[str]) -> float:
    """1 - |A ∩ B| / |A ∪ B| over the token sets; two empty outputs do not diverge (0.0)."""
    left, right = set(a), set(b)
    union = left | right
    if not union:
        return 0.0
    return 1.0 - len(left & right) / len(union)


def normalised_edit_distance(a: Sequence[str], b: Sequence[str]) -> float:
    """Levenshtein distance between the token sequences divided by the longer length, in [0, 1]."""
    if not a and not b:
        return 0.0
    previous = list(range(len(b) + 1))
    for i, left in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, right in enumerate(b, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right))
        previous = current
    return previous[-1] / max(len(a), len(b))


def divergence(a: str, b: str, how: Divergence = "jaccard") -> float:
    """How different two outputs are, on word tokens: 0 = same words, 1 = nothing in common."""
    left, right = word_tokens(a), word_tokens(b)
    return jaccard_distance(left, right) if how == "jaccard" else normalised_edit_distance(left, right)


def mask_values(text: str, values: Iterable[str], placeholder: str = "<ATTR>") -> str:
    """`text` with every whole-word, case-insensitive occurrence of `values` replaced by `placeholder`
    (longest value first, so a full name is masked before its first name): an output that merely echoes the
    name or age it was given is not a different answer."""
    distinct = sorted({v.strip() for v in values if v and v.strip()}, key=len, reverse=True)
    if not distinct:
        return text
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(v) for v in distinct) + r")(?!\w)", re.IGNORECASE)
    return pattern.sub(placeholder, text)


def shared_frame(prompts: Sequence[str]) -> tuple[str, str]:
    """(prefix, suffix) that every prompt shares, cut at whitespace so no word is split ('JSON: Ada' and
    'JSON: Alan' share 'JSON: ', not 'JSON: A'). ('', '') for fewer than two prompts: one prompt shares
    everything with itself, which says nothing about its frame."""
    if len(prompts) < 2:
        return "", ""
    shortest = min(len(p) for p in prompts)
    prefix_len = 0
    while prefix_len < shortest and len({p[prefix_len] for p in prompts}) == 1:
        prefix_len += 1
    prefix = prompts[0][:prefix_len]
    if prefix_len < shortest:  # stopped inside a word: keep the part up to its last whitespace
        cut = max(prefix.rfind(c) for c in " \n\t")
        prefix = prefix[:cut + 1] if cut >= 0 else ""
    room = shortest - len(prefix)
    suffix_len = 0
    while suffix_len < room and len({p[len(p) - 1 - suffix_len] for p in prompts}) == 1:
        suffix_len += 1
    suffix = prompts[0][len(prompts[0]) - suffix_len:] if suffix_len else ""
    if suffix_len < room:
        cut = min((i for i, c in enumerate(suffix) if c in " \n\t"), default=len(suffix))
        suffix = suffix[cut:]
    return prefix, suffix
