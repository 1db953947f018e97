"""Production drift of a deployed version, from the gateway's own records of its requests: a sliding window
per version of what happened to each request (answered, prompt blocked, answer refused), its output length
and the DLP entity types found, compared with a baseline window by a population stability index (PSI) and
a chi-square test of homogeneity. Pure: observations in, findings out; the handler keeps the baseline.

PSI = sum over bins of (a - e) * ln(a / e), with e and a the baseline's and the window's shares (empty bins
floored at PSI_FLOOR so the logarithm exists). Rules of thumb (Siddiqi, credit scoring): < 0.1 stable,
0.1-0.25 some shift, > 0.25 a major shift. The chi-square test compares two rates (2 x 2 table, no Yates
correction); a finding needs both a p-value under the threshold and a change of at least
`min_rate_change`, so a large window does not report shifts too small to matter."""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from scipy.stats import chi2

PSI_FLOOR = 1e-4
NO_FINDINGS = "none"
Outcome = Literal["answered", "blocked", "refused"]


def psi(expected: Sequence[float], actual: Sequence[float], *, floor: float = PSI_FLOOR) -> float:
    """Population stability index of `actual` against `expected`, each a list of counts or shares over the same
    bins (normalised here)."""
    if len(expected) != len(actual) or not expected:
        raise ValueError(f"psi needs two non-empty distributions over the same bins ({len(expected)} vs "
                         f"{len(actual)})")
    if min(*expected, *actual) < 0:
        raise ValueError("psi: counts and shares cannot be negative")
    e_total, a_total = sum(expected), sum(actual)
    if e_total == 0 or a_total == 0:
        raise ValueError("psi: a distribution with no mass")
    index = 0.0
    for e, a in zip(expected, actual, strict=True):
        e_share, a_share = max(e / e_total, floor), max(a / a_total, floor)
        index += (a_share - e_share) * math.log(a_share / e_share)
    return index


@dataclass(frozen=True)
class ChiSquare:
    statistic: float
    dof: int
    p_value: float


def chi_square_homogeneity(first: Sequence[float], second: Sequence[float]) -> ChiSquare:
    """Pearson's chi-square test that two samples of counts over the same categories come from one
    distribution (a 2 x k contingency table, no continuity correction). Categories empty in both are dropped;
    with fewer than two categories left there is nothing to compare (statistic 0, p-value 1)."""
    if len(first) != len(second):
        raise ValueError("chi-square: both samples need the same categories")
    columns = [(a, b) for a, b in zip(first, second, strict=True) if a + b > 0]
    n1, n2 = sum(a for a, _ in columns), sum(b for _, b in columns)
    if len(columns) < 2 or n1 == 0 or n2 == 0:
        return ChiSquare(0.0, 0, 1.0)
    total = n1 + n2
    statistic = 0.0
    for a, b in columns:
        column = a + b
        for observed, row in ((a, n1), (b, n2)):
            expected = row * column / total
            statistic += (observed - expected) ** 2 / expected
    dof = len(columns) - 1
    return ChiSquare(statistic, dof, float(chi2.sf(statistic, dof)))


@dataclass(frozen=True)
class Observation:
    """One gateway request to a version, as the inference.* record tells it (no text)."""

    outcome: Outcome
    output_tokens: int | None = None
    findings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProductionThresholds:
    window: int
    check_every: int
    length_edges: tuple[int, ...]
    rate_p_value: float
    min_rate_change: float
    psi: float
    max_versions: int

    def __post_init__(self) -> None:
        if self.window < 10 or not 1 <= self.check_every <= self.window:
            raise ValueError("window must be >= 10 and check_every within 1..window")
        if list(self.length_edges) != sorted(set(self.length_edges)) or not self.length_edges:
            raise ValueError("length_edges must be strictly increasing")


@dataclass(frozen=True)
class WindowSummary:
    """Counts over one window: enough to compare two windows, and small enough to store as a baseline."""

    requests: int
    blocked: int
    refused: int
    lengths: tuple[int, ...]
    """Answered requests per output-length bin (bins: below edge 1, edge 1 to 2, ..., from the last edge)."""
    findings: Mapping[str, int]
    """Requests' DLP entity types, one count per (request, type), and NO_FINDINGS for requests without any."""

    @property
    def block_rate(self) -> float:
        return self.blocked / self.requests

    @property
    def refusal_rate(self) -> float:
        return self.refused / self.requests

    def as_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "blocked": self.blocked, "refused": self.refused,
                "lengths": list(self.lengths), "findings": dict(self.findings)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WindowSummary:
        return cls(requests=int(data["requests"]), blocked=int(data["blocked"]), refused=int(data["refused"]),
                   lengths=tuple(int(v) for v in data["lengths"]),
                   findings={str(k): int(v) for k, v in dict(data["findings"]).items()})


def length_bin(tokens: int, edges: Sequence[int]) -> int:
    return sum(1 for edge in edges if tokens >= edge)


def summarise(observations: Sequence[Observation], edges: Sequence[int]) -> WindowSummary:
    if not observations:
        raise ValueError("a window summary needs at least one observation")
    lengths = [0] * (len(edges) + 1)
    findings: Counter[str] = Counter()
    for obs in observations:
        if obs.outcome == "answered" and obs.output_tokens is not None:
            lengths[length_bin(obs.output_tokens, edges)] += 1
        findings.update(set(obs.findings) or {NO_FINDINGS})
    return WindowSummary(
        requests=len(observations),
        blocked=sum(1 for o in observations if o.outcome == "blocked"),
        refused=sum(1 for o in observations if o.outcome == "refused"),
        lengths=tuple(lengths),
        findings=dict(findings),
    )


@dataclass(frozen=True)
class Finding:
    metric: str
    statistic: Literal["psi", "chi_square"]
    value: float
    threshold: float
    p_value: float | None = None
    baseline: float | None = None
    current: float | None = None


def _rate_finding(metric: str, base_hits: int, base_n: int, hits: int, n: int,
                  limits: ProductionThresholds) -> Finding | None:
    test = chi_square_homogeneity([base_hits, base_n - base_hits], [hits, n - hits])
    before, now = base_hits / base_n, hits / n
    if test.p_value < limits.rate_p_value and abs(now - before) >= limits.min_rate_change:
        return Finding(metric, "chi_square", test.statistic, limits.rate_p_value, p_value=test.p_value,
                       baseline=before, current=now)
    return None


def _psi_finding(metric: str, base: Sequence[float], now: Sequence[float],
                 limits: ProductionThresholds) -> Finding | None:
    if sum(base) == 0 or sum(now) == 0:
        return None  # nothing answered in one of the windows: the rates say what happened
    index = psi(base, now)
    return Finding(metric, "psi", index, limits.psi) if index > limits.psi else None


def compare(baseline: WindowSummary, current: WindowSummary, limits: ProductionThresholds) -> list[Finding]:
    """The findings of `current` against `baseline`: block and refusal rates (chi-square), the output-length
    and DLP finding-type distributions (PSI)."""
    if len(baseline.lengths) != len(current.lengths):
        raise ValueError("the baseline was summarised with other length bins; it cannot be compared")
    types = sorted(set(baseline.findings) | set(current.findings))
    candidates = [
        _rate_finding("block_rate", baseline.blocked, baseline.requests, current.blocked, current.requests, limits),
        _rate_finding("refusal_rate", baseline.refused, baseline.requests, current.refused, current.requests,
                      limits),
        _psi_finding("output_length", baseline.lengths, current.lengths, limits),
        _psi_finding("dlp_findings", [baseline.findings.get(t, 0) for t in types],
                     [current.findings.get(t, 0) for t in types], limits),
    ]
    return [finding for finding in candidates if finding is not None]


@dataclass
class _VersionWindow:
    observations: deque[Observation]
    seen: int = 0
    quiet_for: int = 0


@dataclass
class SlidingWindows:
    """The last `window` observations of each version, at most `max_versions` versions (the least recently
    observed is dropped first): memory is bounded by window x max_versions observations."""

    limits: ProductionThresholds
    _versions: OrderedDict[str, _VersionWindow] = field(default_factory=OrderedDict)

    def observe(self, version_id: str, observation: Observation) -> WindowSummary | None:
        """Add one observation; every `check_every` observations of a full window, its summary to compare."""
        state = self._versions.get(version_id)
        if state is None:
            state = _VersionWindow(deque(maxlen=self.limits.window))
            self._versions[version_id] = state
            while len(self._versions) > self.limits.max_versions:
                self._versions.popitem(last=False)
        self._versions.move_to_end(version_id)
        state.observations.append(observation)
        state.seen += 1
        state.quiet_for = max(0, state.quiet_for - 1)
        # The first full window, then every `check_every` observations.
        beyond = state.seen - self.limits.window
        if beyond < 0 or beyond % self.limits.check_every:
            return None
        return summarise(list(state.observations), self.limits.length_edges)

    def reported(self, version_id: str) -> None:
        """After a drift report, stay quiet for one window: the same shift is not reported on every check."""
        if version_id in self._versions:
            self._versions[version_id].quiet_for = self.limits.window

    def quiet(self, version_id: str) -> bool:
        state = self._versions.get(version_id)
        return state is not None and state.quiet_for > 0

    def forget(self, version_id: str) -> None:
        self._versions.pop(version_id, None)

    def __len__(self) -> int:
        return len(self._versions)
