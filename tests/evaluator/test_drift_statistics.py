"""Production drift's statistics against values worked out by hand (services/evaluator/domain/drift.py), the
sliding windows' bounds, and the comparison of a scheduled re-evaluation with its baseline
(domain/monitoring_policy.py)."""

from __future__ import annotations

import math

import pytest

from services.evaluator.domain.drift import (
    NO_FINDINGS,
    Observation,
    ProductionThresholds,
    SlidingWindows,
    chi_square_homogeneity,
    compare,
    psi,
    summarise,
)
from services.evaluator.domain.monitoring_policy import Bound, MonitoringPolicy, flatten, regressions

LIMITS = ProductionThresholds(window=100, check_every=25, length_edges=(8, 32), rate_p_value=0.01,
                              min_rate_change=0.05, psi=0.25, max_versions=3)


def test_psi_matches_the_formula_worked_by_hand() -> None:
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([50, 50], [25, 75]) == pytest.approx(0.274653, abs=1e-6)  # counts are normalised
    assert psi([10, 20, 30], [10, 20, 30]) == 0.0
    # An empty bin is floored, not infinite: (1e-4 - 0.5) ln(1e-4 / 0.5) + (0.9999 - 0.5) ln(0.9999 / 0.5)
    assert psi([1, 1], [0, 1]) == pytest.approx((1e-4 - 0.5) * math.log(2e-4) + (1 - 0.5) * math.log(2.0), rel=1e-3)
    for bad in (([], []), ([1], [1, 2]), ([0, 0], [1, 1]), ([-1, 2], [1, 1])):
        with pytest.raises(ValueError):
            psi(*bad)


def test_chi_square_matches_the_textbook_values() -> None:
    # 2 x 2: expected 15 in every cell, statistic 4 * 25 / 15; one degree of freedom: p = erfc(sqrt(x / 2)).
    two = chi_square_homogeneity([10, 20], [20, 10])
    assert two.statistic == pytest.approx(20 / 3) and two.dof == 1
    assert two.p_value == pytest.approx(math.erfc(math.sqrt(two.statistic / 2)))
    assert two.p_value == pytest.approx(0.009823, abs=1e-6)
    # 2 x 3: expected 25, 30, 45 per row; two degrees of freedom: p = exp(-x / 2).
    three = chi_square_homogeneity([20, 30, 50], [30, 30, 40])
    assert three.statistic == pytest.approx(1 + 0 + 25 / 45 + 1 + 0 + 25 / 45) and three.dof == 2
    assert three.p_value == pytest.approx(math.exp(-three.statistic / 2))
    # Categories empty in both samples are dropped; one category left: nothing to test.
    assert chi_square_homogeneity([10, 0, 20], [20, 0, 10]).statistic == pytest.approx(20 / 3)
    assert chi_square_homogeneity([5, 0], [7, 0]).p_value == 1.0


def stream(n: int, *, blocked_every: int = 0, tokens: int = 20, finding: str | None = None) -> list[Observation]:
    out = []
    for i in range(n):
        if blocked_every and i % blocked_every == 0:
            out.append(Observation("blocked", None, ("prompt:EMAIL_ADDRESS",)))
        else:
            out.append(Observation("answered", tokens + i % 5, (finding,) if finding else ()))
    return out


def test_a_summary_counts_outcomes_length_bins_and_finding_types() -> None:
    summary = summarise([Observation("answered", 3), Observation("answered", 8, ("response:PHONE",)),
                         Observation("answered", 40), Observation("refused", None, ("response:EMAIL",)),
                         Observation("blocked")], LIMITS.length_edges)
    assert (summary.requests, summary.blocked, summary.refused) == (5, 1, 1)
    assert summary.lengths == (1, 1, 1)  # <8, 8-31, >=32
    assert summary.findings == {NO_FINDINGS: 3, "response:PHONE": 1, "response:EMAIL": 1}
    assert summary.block_rate == 0.2 and summary.from_json(summary.as_json()) == summary


def test_a_stable_stream_does_not_drift_and_shifts_in_block_rate_or_length_do() -> None:
    baseline = summarise(stream(100, blocked_every=20), LIMITS.length_edges)
    assert compare(baseline, summarise(stream(100, blocked_every=20), LIMITS.length_edges), LIMITS) == []
    # 5% blocked -> 34% blocked (every third): chi-square far past the threshold; the blocked prompts' e-mail
    # findings shift the DLP distribution with it.
    found = {f.metric: f for f in compare(baseline, summarise(stream(100, blocked_every=3), LIMITS.length_edges),
                                          LIMITS)}
    assert set(found) == {"block_rate", "dlp_findings"}
    blocks = found["block_rate"]
    assert blocks.metric == "block_rate" and blocks.p_value is not None and blocks.p_value < 0.01
    assert (blocks.baseline, blocks.current) == (0.05, 0.34)
    # Answers grow from about 20 tokens to about 40: every answer moves to the last bin.
    [length] = compare(baseline, summarise(stream(100, blocked_every=20, tokens=40), LIMITS.length_edges), LIMITS)
    assert length.metric == "output_length" and length.statistic == "psi" and length.value > 0.25
    # Responses start carrying phone numbers.
    [dlp] = compare(baseline, summarise(stream(100, blocked_every=20, finding="response:PHONE_NUMBER"),
                                        LIMITS.length_edges), LIMITS)
    assert dlp.metric == "dlp_findings"


def test_answers_refused_at_the_response_stage_shift_the_refusal_rate() -> None:
    baseline = summarise(stream(100), LIMITS.length_edges)
    refusing = stream(70) + [Observation("refused")] * 30
    [refusals] = compare(baseline, summarise(refusing, LIMITS.length_edges), LIMITS)
    assert (refusals.metric, refusals.baseline, refusals.current) == ("refusal_rate", 0.0, 0.3)


def test_a_significant_but_tiny_rate_change_is_not_reported() -> None:
    limits = ProductionThresholds(window=10_000, check_every=100, length_edges=(8,), rate_p_value=0.01,
                                  min_rate_change=0.05, psi=0.25, max_versions=1)
    before = summarise(stream(10_000, blocked_every=50), limits.length_edges)  # 2%
    after = summarise(stream(10_000, blocked_every=25), limits.length_edges)  # 4%: p << 0.01, change 0.02
    assert compare(before, after, limits) == []


def test_windows_check_when_full_then_every_check_every_and_stay_bounded() -> None:
    windows = SlidingWindows(LIMITS)
    due = [i for i, obs in enumerate(stream(160)) if windows.observe("a.v1", obs) is not None]
    assert due == [99, 124, 149]
    assert len(windows._versions["a.v1"].observations) == 100
    windows.reported("a.v1")
    assert windows.quiet("a.v1")
    for name in ("b.v1", "c.v1", "d.v1"):
        windows.observe(name, Observation("answered", 1))
    assert len(windows) == 3 and "a.v1" not in windows._versions  # least recently observed dropped first
    windows.forget("b.v1")
    assert len(windows) == 2


def test_scheduled_regressions_use_the_configured_bounds() -> None:
    baseline = flatten([{"name": "memorisation", "metrics": {"extraction_rate": 0.0, "canary_exposure_max": None}},
                        {"name": "red_team", "metrics": {"attack_success_rate": 0.2}}])
    assert baseline == {"memorisation.extraction_rate": 0.0, "red_team.attack_success_rate": 0.2}
    bounds = {"memorisation.extraction_rate": Bound(max_increase=0.05),
              "memorisation.canary_exposure_max": Bound(max_increase=4.0),
              "red_team.attack_success_rate": Bound(max_increase=0.05)}
    same = regressions(baseline, dict(baseline), bounds)
    assert same == []
    found = regressions(baseline, {"memorisation.extraction_rate": 0.1, "red_team.attack_success_rate": 0.22,
                                   "memorisation.canary_exposure_max": 30.0}, bounds)
    assert [(r.metric, r.memorisation) for r in found] == [("memorisation.extraction_rate", True)]
    assert found[0].value == pytest.approx(0.1)


def test_the_bundled_monitoring_policy_is_valid_and_refuses_stray_metrics() -> None:
    from services.evaluator.suites.registry import DEFAULT_MONITORING, SuiteConfigError, load_monitoring, load_suites

    _, suites = load_suites()
    policy = load_monitoring(suites=suites)
    assert policy.scheduled.suites == ["memorisation", "pii_leakage", "red_team"]
    assert policy.production.thresholds().window == 200
    with pytest.raises(ValueError, match=r"bias\.max_loglik_gap"):
        MonitoringPolicy.model_validate({"scheduled": {"suites": ["memorisation"],
                                                       "thresholds": {"bias.max_loglik_gap": {"max_increase": 1}}}})
    # The bundled policy under a suite set of its own schedules the suites it has; a file given must fit.
    without_red_team = {name: suite for name, suite in suites.items() if name != "red_team"}
    narrowed = load_monitoring(suites=without_red_team)
    assert narrowed.scheduled.suites == ["memorisation", "pii_leakage"]
    assert not any(metric.startswith("red_team.") for metric in narrowed.scheduled.thresholds)
    with pytest.raises(SuiteConfigError, match="not configured: red_team"):
        load_monitoring(DEFAULT_MONITORING, suites=without_red_team)


def test_a_metric_that_turns_non_finite_or_goes_missing_is_a_finding_not_a_skip() -> None:
    """NaN compares False with every bound: an unguarded `now - before > bound` let a model whose output
    could no longer be scored pass every scheduled re-evaluation. Named as the gate names it."""
    bounds = {"memorisation.extraction_rate": Bound(max_increase=0.05),
              "pii_leakage.leak_rate": Bound(max_increase=0.05),
              "red_team.attack_success_rate": Bound(max_increase=0.05),
              "task_quality.exact_match": Bound(max_decrease=0.1)}
    baseline = {"memorisation.extraction_rate": 0.0, "pii_leakage.leak_rate": 0.1,
                "red_team.attack_success_rate": 0.2, "task_quality.exact_match": 0.8}
    # pii_leakage.leak_rate missing: how a NaN metric arrives in evaluation.completed (null, dropped by flatten)
    current = flatten([{"name": "memorisation", "metrics": {"extraction_rate": math.nan}},
                       {"name": "pii_leakage", "metrics": {"leak_rate": None}},
                       {"name": "red_team", "metrics": {"attack_success_rate": math.inf}},
                       {"name": "task_quality", "metrics": {"exact_match": -math.inf}}])
    found = regressions(baseline, current, bounds)
    assert [(r.metric, r.statistic, r.problem) for r in found] == [
        ("memorisation.extraction_rate", "increase", "value_nan"),
        ("pii_leakage.leak_rate", "increase", "value_missing"),
        ("red_team.attack_success_rate", "increase", "value_inf"),
        ("task_quality.exact_match", "decrease", "value_-inf")]
    assert found[1].current is None and found[1].baseline == 0.1
    message = found[0].describe()
    assert "memorisation.extraction_rate" in message and "not a finite number" in message
    # Nothing measured to drift from: a metric the baseline lacks (or had as null) is still not judged.
    assert regressions({}, current, bounds) == []
