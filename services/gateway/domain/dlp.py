"""DLP decisions over detector findings, pure: which findings count, which wins an overlap, what the text
becomes. The detector itself (the scanner's engine) sits behind `TextDetector`, so this module never loads
Presidio or spaCy and tests can hand it any detector."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Action = Literal["allow", "redact", "block"]
SEVERITY: Mapping[Action, int] = {"allow": 0, "redact": 1, "block": 2}
DEFAULT_KEY = "default"
"""The key of a DLP rule map that applies to every entity type not named in it."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One detection: where, what, how sure. Never the matched text."""

    entity: str
    start: int
    end: int
    score: float


class TextDetector(Protocol):
    """What the policy needs of a detection engine: findings per text, in order."""

    def detect_many(self, texts: Sequence[str]) -> list[list[Finding]]: ...


@dataclass(frozen=True, slots=True)
class DlpRules:
    """One side's rules (prompt or response): an action per entity type, a default for the others, and the
    score below which a finding is ignored."""

    actions: Mapping[str, Action]
    default: Action
    min_score: float

    def action(self, entity: str) -> Action:
        return self.actions.get(entity, self.default)


@dataclass(frozen=True, slots=True)
class Decided:
    finding: Finding
    action: Action


def decide(findings: Iterable[Finding], rules: DlpRules) -> list[Decided]:
    """The findings the rules act on (redact or block), overlaps resolved, in text order.

    Findings below the score floor and findings of allowed types are dropped *before* overlap resolution:
    an allowed LOCATION that outscores an overlapping PERSON must not shield the name from redaction."""
    acted = [
        Decided(f, rules.action(f.entity))
        for f in findings
        if f.score >= rules.min_score and f.end > f.start and rules.action(f.entity) != "allow"
    ]
    return resolve_overlaps(acted)


def resolve_overlaps(decided: Iterable[Decided]) -> list[Decided]:
    """Keep the strongest of overlapping findings (block before redact, then score, then length), as the
    scanner does; the kept ones never overlap, sorted by start."""
    kept: list[Decided] = []
    ranked = sorted(
        decided,
        key=lambda d: (-SEVERITY[d.action], -d.finding.score, -(d.finding.end - d.finding.start), d.finding.start),
    )
    for candidate in ranked:
        f = candidate.finding
        if all(f.end <= k.finding.start or f.start >= k.finding.end for k in kept):
            kept.append(candidate)
    kept.sort(key=lambda d: d.finding.start)
    return kept


def placeholder(entity: str) -> str:
    return f"<{entity}>"


def redact(text: str, decided: Sequence[Decided], *, offset: int = 0) -> str:
    """`text` with every decided span (non-overlapping, sorted, positions relative to `offset`) replaced by
    `<ENTITY_TYPE>`."""
    parts: list[str] = []
    cursor = 0
    for d in decided:
        start, end = d.finding.start - offset, d.finding.end - offset
        parts.append(text[cursor:start])
        parts.append(placeholder(d.finding.entity))
        cursor = end
    parts.append(text[cursor:])
    return "".join(parts)


def counts(decided: Iterable[Decided]) -> dict[str, int]:
    """Findings per entity type: what audit records carry (types and counts, never text)."""
    return dict(sorted(Counter(d.finding.entity for d in decided).items()))


def blocking(decided: Iterable[Decided]) -> list[str]:
    """Entity types among `decided` whose action is block, sorted."""
    return sorted({d.finding.entity for d in decided if d.action == "block"})


def merge_counts(*many: Mapping[str, int]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for one in many:
        total.update(one)
    return dict(sorted(total.items()))
