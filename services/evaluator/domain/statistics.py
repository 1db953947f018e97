"""Uncertainty of a mean measured on a few dozen probes: a seeded percentile bootstrap, so a report can say
whether a difference between groups (or between base and fine-tuned) is larger than the probe set's noise.
Pure: numbers in, numbers out."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A sample mean with its bootstrap confidence interval [low, high]."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float = DEFAULT_CONFIDENCE

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n, "confidence": self.confidence}


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def non_finite(values: Sequence[float | None]) -> int:
    """How many of `values` are NaN or infinite (None, "not scored", is not counted)."""
    return sum(1 for v in values if v is not None and not math.isfinite(v))


def max_or_nan(values: Sequence[float]) -> float:
    """The largest value, or NaN when any is not finite. Builtin max() is order-dependent with NaN (a NaN
    after a number loses every `>` comparison and disappears), so an aggregate over a NaN component could read
    as a finite pass; NaN instead fails the gate (`max:value_nan`, domain/gate.py)."""
    if not values:
        raise ValueError("max of no values")
    if non_finite(values):
        return math.nan
    return max(values)


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile of already sorted values, linearly interpolated between neighbours (numpy's default)."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside [0, 1]")
    position = q * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    weight = position - lower
    return sorted_values[lower] * (1 - weight) + sorted_values[upper] * weight


def bootstrap_mean_ci(values: Sequence[float], *, resamples: int = DEFAULT_RESAMPLES,
                      confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Estimate:
    """Mean of `values` and the percentile-bootstrap interval of that mean: resample the values with
    replacement `resamples` times and take the (1-confidence)/2 and (1+confidence)/2 quantiles of the
    resampled means. Seeded, so the same probes give the same interval in every report."""
    if not values:
        raise ValueError("a bootstrap needs at least one value")
    if resamples < 1:
        raise ValueError("a bootstrap needs at least one resample")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence} is outside (0, 1)")
    data = [float(v) for v in values]
    centre = sum(data) / len(data)
    if len(data) == 1 or min(data) == max(data):
        return Estimate(centre, centre, centre, len(data), confidence)  # nothing to resample: no spread
    rng = random.Random(seed)
    n = len(data)
    means = sorted(sum(rng.choices(data, k=n)) / n for _ in range(resamples))
    tail = (1.0 - confidence) / 2.0
    return Estimate(centre, quantile(means, tail), quantile(means, 1.0 - tail), n, confidence)


def token_weighted_nll(scores: Sequence[tuple[float, int]]) -> float | None:
    """Mean negative log-likelihood per token over (summed logprob, token count) pairs: every token weighs
    the same, so long references are not under-counted (the language-modelling loss of the whole set)."""
    tokens = sum(count for _, count in scores)
    if tokens == 0:
        return None
    return -sum(logprob for logprob, _ in scores) / tokens


def perplexity(mean_nll: float) -> float:
    """exp(loss), capped where exp would overflow a float (a loss of 700 nats means nothing was learned)."""
    return math.exp(min(mean_nll, 700.0))
