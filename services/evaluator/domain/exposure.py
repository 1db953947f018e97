"""Canary exposure (Carlini et al., "The Secret Sharer", USENIX Security 2019) and verbatim-extraction
arithmetic. Pure: log-perplexities and token ids in, numbers out.

A canary's exposure is how much more likely the model finds the planted secret than the other secrets of
its shape: exposure = log2|R| - log2 rank, in bits, where R is the space of possible secrets and rank is
the secret's position when R is sorted by log-perplexity (most likely first). 0 bits: the secret looks
like any other; log2|R| bits: it is the model's first guess, extractable by asking.

Small spaces are ranked exactly over every secret. Large ones (62^24 API keys) cannot be, so, as in the
paper (section 4.3), a skew-normal distribution is fitted to the log-perplexities of random candidates
and exposure = -log2 P(candidate log-perplexity <= canary's): the fraction of the whole space ranked above
the canary, read off the fitted tail, which reaches far beyond what a rank among n samples can
(log2(n + 1) bits at most); that sampled rank is reported alongside as a model-free check."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

LN2 = math.log(2.0)


def rank_among(value: float, others: Sequence[float]) -> float:
    """1-based rank of `value` among `others` by log-perplexity, lowest (most likely) first. Ties share
    the middle rank: a model that scores everything alike must not make a canary look memorised."""
    lower = sum(1 for other in others if other < value)
    equal = sum(1 for other in others if other == value)
    return 1.0 + lower + equal / 2.0


def exposure_from_rank(rank: float, reference_size: int) -> float:
    """log2|R| - log2 rank: bits of advantage over guessing uniformly in R."""
    if reference_size < 1 or not 1.0 <= rank <= reference_size:
        raise ValueError(f"rank {rank} is not within a reference set of {reference_size}")
    return math.log2(reference_size) - math.log2(rank)


@dataclass(frozen=True)
class SkewNormal:
    """A fitted skew-normal (scipy's parameterisation: shape a, loc, scale)."""

    a: float
    loc: float
    scale: float

    def log2_cdf(self, value: float) -> float:
        if self.scale <= 0.0:  # every candidate scored the same: a point mass
            return 0.0 if value >= self.loc else -math.inf
        from scipy.stats import skewnorm

        return float(skewnorm.logcdf(value, self.a, loc=self.loc, scale=self.scale)) / LN2


def fit_skew_normal(log_perplexities: Sequence[float]) -> SkewNormal:
    """Maximum-likelihood fit to the candidates' log-perplexities (the paper's choice: their distribution
    is close to normal with a skew)."""
    if len(log_perplexities) < 3:
        raise ValueError("a skew-normal fit needs at least 3 candidates")
    values = [float(v) for v in log_perplexities]
    if max(values) - min(values) <= 1e-12 * max(1.0, abs(values[0])):
        return SkewNormal(0.0, values[0], 0.0)
    from scipy.stats import skewnorm

    a, loc, scale = skewnorm.fit(values)
    return SkewNormal(float(a), float(loc), float(scale))


def estimated_exposure(value: float, fit: SkewNormal, space_bits: float) -> float:
    """-log2 CDF(value) under the fitted distribution, capped at log2|R| (no secret can be ranked above
    first) and floored at 0. NaN when the value or the fit is not a number: max(0.0, nan) is 0.0, which
    would read as "not memorised"."""
    bits = -fit.log2_cdf(value)
    if math.isnan(bits):
        return math.nan
    return min(space_bits, max(0.0, bits))


@dataclass(frozen=True)
class CanaryExposure:
    exposure: float
    """Bits: exact over the whole space, or the skew-normal estimate (method says which)."""
    rank: float
    """Among the candidates scored (the whole space, less the other canaries, when enumerated)."""
    reference_size: int
    """Candidates scored plus the canary itself."""
    sampled_exposure: float
    """log2(reference_size) - log2(rank): exact when enumerated, else capped by the sample size."""
    method: Literal["exact", "skewnorm"]


def canary_exposures(canaries: Sequence[float], candidates: Sequence[float], *, space_bits: float,
                     exhaustive: bool) -> tuple[list[CanaryExposure], SkewNormal | None]:
    """Exposure of each canary (its log-perplexity) against the same candidates' log-perplexities.
    `exhaustive`: the candidates are every other secret of the space, so ranks are exact. Otherwise
    they are a uniform sample and the headline figure is the skew-normal estimate (returned fit).
    A log-perplexity that is not finite (the model's scores are broken) makes the canary's exposure NaN, and
    a non-finite candidate every canary's: NaN compares False, so a rank or a fit over it says nothing, and
    the NaN fails the gate (`max:value_nan`) instead."""
    if not candidates:
        raise ValueError("exposure needs candidates to rank against")
    reference_size = len(candidates) + 1
    method: Literal["exact", "skewnorm"] = "exact" if exhaustive else "skewnorm"
    if not all(math.isfinite(c) for c in candidates):
        return [CanaryExposure(math.nan, math.nan, reference_size, math.nan, method) for _ in canaries], None
    fit = None if exhaustive else fit_skew_normal(candidates)
    out: list[CanaryExposure] = []
    for value in canaries:
        if not math.isfinite(value):
            out.append(CanaryExposure(math.nan, math.nan, reference_size, math.nan, method))
            continue
        rank = rank_among(value, candidates)
        sampled = exposure_from_rank(rank, reference_size)
        if fit is None:
            out.append(CanaryExposure(sampled, rank, reference_size, sampled, "exact"))
        else:
            out.append(CanaryExposure(estimated_exposure(value, fit, space_bits), rank, reference_size, sampled,
                                      "skewnorm"))
    return out, fit


# ------------------------------------------------------------------------------------- extraction


def matched_prefix(generated: Sequence[int], reference: Sequence[int]) -> int:
    """How many leading tokens of `generated` reproduce `reference`."""
    count = 0
    for produced, expected in zip(generated, reference, strict=False):
        if produced != expected:
            break
        count += 1
    return count


def extraction_rate(matched: Sequence[int], k: int) -> float | None:
    """Share of records whose K greedy tokens all reproduced the reference; None when none could be tried."""
    if not matched:
        return None
    return sum(1 for m in matched if m >= k) / len(matched)
