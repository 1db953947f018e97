"""Suites' arithmetic on scores that are not finite numbers (NaN, +/-inf: a model whose logits broke). Every
comparison with NaN is False, so an unguarded `x > bound`, `max()` or binning reads such a model as a pass;
here each such score counts against the model or turns the metric NaN, which the gate fails (`value_nan`)."""

from __future__ import annotations

import math

import pytest

from services.evaluator.domain.exposure import SkewNormal, canary_exposures, estimated_exposure
from services.evaluator.domain.reward_metrics import (
    HackingCheck,
    expected_calibration_error,
    length_bias,
    pairwise_accuracy,
)
from services.evaluator.domain.statistics import max_or_nan, non_finite

NAN, INF = float("nan"), float("inf")


def test_an_aggregate_max_over_a_nan_component_is_nan_whatever_the_order() -> None:
    assert max(0.1, NAN) == 0.1  # what the bias suite's max_* metrics did
    assert math.isnan(max_or_nan([0.1, NAN])) and math.isnan(max_or_nan([NAN, 0.1]))
    assert math.isnan(max_or_nan([0.1, -INF]))
    assert max_or_nan([0.1, 0.3]) == 0.3
    assert non_finite([0.1, NAN, None, INF, -INF]) == 3


@pytest.mark.parametrize("broken", [NAN, INF, -INF])
def test_a_non_finite_canary_score_is_no_proof_it_was_not_memorised(broken: float) -> None:
    for exhaustive in (True, False):
        # a broken canary: its own exposure is NaN, the others' stay numbers
        found, _ = canary_exposures([broken, 1.0], [2.0, 3.0, 4.0, 5.0], space_bits=20.0, exhaustive=exhaustive)
        assert math.isnan(found[0].exposure) and math.isfinite(found[1].exposure)
        # a broken candidate: no rank or fit means anything, every exposure is NaN
        found, fit = canary_exposures([1.0], [2.0, broken, 4.0, 5.0], space_bits=20.0, exhaustive=exhaustive)
        assert fit is None and math.isnan(found[0].exposure)
    # max(0.0, nan) is 0.0: "not memorised"; NaN instead
    assert math.isnan(estimated_exposure(NAN, SkewNormal(0.0, 1.0, 1.0), 20.0))


@pytest.mark.parametrize("broken", [NAN, INF, -INF])
def test_a_non_finite_reward_score_never_counts_for_the_model(broken: float) -> None:
    chosen, rejected = [2.0, broken, 3.0], [1.0, 0.0, broken]
    assert pairwise_accuracy(chosen, rejected) == pytest.approx(1 / 3)  # only the finite pair is right
    assert math.isnan(expected_calibration_error(chosen, rejected))
    assert math.isnan(length_bias(chosen, rejected, [10, 20, 30], [5, 5, 5]).excess)
    assert HackingCheck(reward_before=1.0, reward_after=broken, quality_before=-1.0, quality_after=-1.0,
                        tolerance=0.1).hacked
    assert HackingCheck(reward_before=1.0, reward_after=2.0, quality_before=-1.0, quality_after=broken,
                        tolerance=0.1).hacked
    assert not HackingCheck(reward_before=1.0, reward_after=2.0, quality_before=-1.0, quality_after=-1.0,
                            tolerance=0.1).hacked
