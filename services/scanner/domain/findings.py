"""Pure decisions over detections: which detections count, which win when they overlap, what a record's
fate is, and what the dataset's verdict is. No Presidio, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from services.scanner.domain.policy import SEVERITY, Action, Policy, Rule

Verdict = Literal["clean", "redacted", "blocked"]


@dataclass(frozen=True, slots=True)
class Span:
    """A detection in one text field: where, what, how sure. Never the matched text."""

    entity: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class Decided:
    span: Span
    rule: Rule

    @property
    def action(self) -> Action:
        return self.rule.action


def resolve_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep the strongest of overlapping detections (score, then length): a validated credit card beats the
    phone-number reading of its digits, a JWT beats the generic 'token=' secret around it."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start)):
        if all(span.end <= other.start or span.start >= other.end for other in kept):
            kept.append(span)
    kept.sort(key=lambda s: s.start)
    return kept


def decide_spans(spans: Iterable[Span], policy: Policy, classification: str) -> list[Decided]:
    """Drop what the policy ignores (ungoverned entity or below threshold), then resolve overlaps."""
    ruled = {}
    for span in spans:
        rule = policy.decide(classification, span.entity, span.score)
        if rule is not None:
            ruled[span] = rule
    return [Decided(span, ruled[span]) for span in resolve_overlaps(ruled)]


def record_action(decided: Iterable[Decided]) -> Action:
    return max((d.action for d in decided), key=SEVERITY.__getitem__, default=Action.ALLOW)


@dataclass(frozen=True, slots=True)
class VerdictInputs:
    block_findings: Mapping[str, list[int]]  # entity -> lines where a block_dataset finding occurred
    personal_counts: Mapping[str, int]  # personal entity -> findings at or above threshold
    personal_data_allowed: bool
    personal_refusal: str
    modified_records: int
    dropped_records: int
    extra_blocking: tuple[str, ...] = ()  # e.g. missing manifest, checksum mismatch


def _lines(lines: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    return shown + (f" and {len(lines) - limit} more" if len(lines) > limit else "")


def decide_verdict(inputs: VerdictInputs) -> tuple[Verdict, list[str]]:
    reasons = list(inputs.extra_blocking)
    for entity, lines in sorted(inputs.block_findings.items()):
        reasons.append(f"policy blocks the dataset on {entity}: found on line(s) {_lines(sorted(set(lines)))}")
    if inputs.personal_counts and not inputs.personal_data_allowed:
        found = ", ".join(f"{entity} x{count}" for entity, count in sorted(inputs.personal_counts.items()))
        reasons.append(f"personal data found ({found}) but {inputs.personal_refusal}")
    if reasons:
        return "blocked", reasons
    if inputs.modified_records or inputs.dropped_records:
        return "redacted", []
    return "clean", []
