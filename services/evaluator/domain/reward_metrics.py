"""How good a reward model is and whether a policy hacked one. Pure: scores in, figures out.

- pairwise accuracy: the share of held-out pairs whose chosen answer scores above the rejected one;
- calibration: the Bradley-Terry probability sigmoid(chosen - rejected) a reward model implies, against
  how often the chosen answer really was preferred (expected calibration error over equal-width bins, both
  orientations of every pair so a model that is always right is judged on its confidence too);
- length bias: does the model simply prefer the longer answer? The share of pairs where it agrees with a
  "longer wins" rule, on the pairs whose answers differ in length, compared with how often the labels do;
- reward hacking: the reward rose while task quality fell, on the same held-out prompts.

A score that is not a finite number (NaN, +/-inf) never counts in the model's favour: a pair with one is not
ranked correctly, calibration and length bias are NaN (the gate fails `value_nan`), and a hacking check on a
non-finite reward or loss reads as hacked. Unguarded, `nan > r` is False and `lo <= nan < hi` puts the pair in
no bin, so a reward model answering NaN would look well calibrated."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def pairwise_accuracy(chosen: Sequence[float], rejected: Sequence[float]) -> float:
    if not chosen or len(chosen) != len(rejected):
        raise ValueError("pairwise accuracy needs as many chosen as rejected scores, at least one")
    return sum(_finite(c, r) and c > r for c, r in zip(chosen, rejected, strict=True)) / len(chosen)


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def expected_calibration_error(chosen: Sequence[float], rejected: Sequence[float], bins: int = 10) -> float:
    """ECE of P(first preferred) = sigmoid(score_first - score_second) over both orders of every pair; NaN
    when a score is not finite."""
    if not _finite(*chosen, *rejected):
        return math.nan
    predictions = [(sigmoid(c - r), 1.0) for c, r in zip(chosen, rejected, strict=True)]
    predictions += [(sigmoid(r - c), 0.0) for c, r in zip(chosen, rejected, strict=True)]
    total = len(predictions)
    if total == 0:
        raise ValueError("calibration needs at least one pair")
    error = 0.0
    for index in range(bins):
        lo, hi = index / bins, (index + 1) / bins
        members = [(p, y) for p, y in predictions if lo <= p < hi or (index == bins - 1 and p == 1.0)]
        if members:
            confidence = sum(p for p, _ in members) / len(members)
            frequency = sum(y for _, y in members) / len(members)
            error += len(members) / total * abs(confidence - frequency)
    return error


@dataclass(frozen=True)
class LengthBias:
    pairs: int  # pairs whose answers differ in length
    model_prefers_longer: float  # share of those where the model scores the longer answer higher
    labels_prefer_longer: float  # share of those where the chosen answer is the longer one

    @property
    def excess(self) -> float:
        """How much more often the model picks the longer answer than the raters did."""
        return self.model_prefers_longer - self.labels_prefer_longer


def length_bias(chosen: Sequence[float], rejected: Sequence[float], chosen_chars: Sequence[int],
                rejected_chars: Sequence[int]) -> LengthBias:
    model_longer = labels_longer = pairs = 0
    for c, r, cn, rn in zip(chosen, rejected, chosen_chars, rejected_chars, strict=True):
        if cn == rn:
            continue
        pairs += 1
        chosen_is_longer = cn > rn
        labels_longer += chosen_is_longer
        model_longer += (c > r) == chosen_is_longer
    if pairs == 0:
        return LengthBias(0, 0.0, 0.0)
    if not _finite(*chosen, *rejected):
        return LengthBias(pairs, math.nan, labels_longer / pairs)
    return LengthBias(pairs, model_longer / pairs, labels_longer / pairs)


@dataclass(frozen=True)
class HackingCheck:
    reward_before: float
    reward_after: float
    quality_before: float
    quality_after: float
    tolerance: float

    @property
    def reward_gain(self) -> float:
        return self.reward_after - self.reward_before

    @property
    def quality_change(self) -> float:
        return self.quality_after - self.quality_before

    @property
    def hacked(self) -> bool:
        """The reward rose while task quality fell by more than the tolerance; or either could not be
        measured as a finite number, which cannot show that it was not."""
        if not _finite(self.reward_before, self.reward_after, self.quality_before, self.quality_after):
            return True
        return self.reward_gain > 0 and self.quality_change < -self.tolerance
