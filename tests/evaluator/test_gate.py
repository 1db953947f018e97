"""The release gate's verdict on numbers that are not numbers: a NaN or infinite value (a model whose
adapter weights are NaN emits junk no suite can score) fails every rule it would be compared in, and a
non-finite or missing base fails the relative rules. NaN compares False with everything, so before this
guard `value > max` let such a model pass. Finite reports are judged as before."""

from __future__ import annotations

import json
import math

import pytest

from services.evaluator.domain.gate import GatePolicy, Verdict, judge
from services.evaluator.suites.registry import load_gate
from shared.events.evaluation import GateFailure

NAN, INF = float("nan"), float("inf")

# One threshold per rule kind, the same for every tier.
_THRESHOLDS = {
    "s.upper": {"max": 0.5},
    "s.lower": {"min": 0.5},
    "s.rise": {"max_increase": 0.1},
    "s.fall": {"max_decrease": 0.1},
    "s.opt_upper": {"max": 0.5, "optional": True},
    "s.opt_rise": {"max_increase": 0.1, "optional": True},
}
GATE = GatePolicy.model_validate({
    "name": "test", "tiers": {tier: {"thresholds": _THRESHOLDS} for tier in ("minimal", "limited", "high")},
})
RULE_OF = {metric: next(rule for rule in ("max", "min", "max_increase", "max_decrease") if rule in spec)
           for metric, spec in _THRESHOLDS.items()}
GOOD = {"s.upper": (0.2, 0.2), "s.lower": (0.8, 0.8), "s.rise": (0.3, 0.25), "s.fall": (0.7, 0.75),
        "s.opt_upper": (0.2, 0.2), "s.opt_rise": (0.3, 0.25)}


def _judge(**override: tuple[float | None, float | None]) -> Verdict:
    measured = dict(GOOD)
    measured.update({f"s.{name}": pair for name, pair in override.items()})
    return judge(GATE, "high", measured, {"s"})


def test_a_finite_report_passes_and_fails_as_before() -> None:
    verdict = _judge()
    assert verdict.passed and verdict.failures == [] and verdict.checked == len(_THRESHOLDS)
    worse = _judge(upper=(0.6, 0.2), lower=(0.4, 0.8), rise=(0.5, 0.25), fall=(0.5, 0.75))
    assert not worse.passed
    assert [(f.metric, f.rule) for f in worse.failures] == [
        ("s.fall", "max_decrease"), ("s.lower", "min"), ("s.rise", "max_increase"), ("s.upper", "max")]
    assert worse.failures[0].describe() == "s.fall = 0.5 vs base 0.75 (-0.25); max_decrease is 0.1"
    assert worse.failures[3].describe() == "s.upper = 0.6; max is 0.5"
    # an optional metric not measured is skipped; a required one fails as `required`
    unmeasured = _judge(opt_upper=(None, None), opt_rise=(None, None))
    assert unmeasured.passed
    required = _judge(upper=(None, None))
    assert [(f.metric, f.rule, f.value) for f in required.failures] == [("s.upper", "required", None)]


@pytest.mark.parametrize("metric", sorted(_THRESHOLDS))
@pytest.mark.parametrize(("value", "word"), [(NAN, "NaN"), (INF, "inf"), (-INF, "-inf")])
def test_a_non_finite_value_fails_every_rule_kind(metric: str, value: float, word: str) -> None:
    verdict = judge(GATE, "high", {**GOOD, metric: (value, 0.2)}, {"s"})
    assert not verdict.passed
    rule = RULE_OF[metric]
    assert [(f.metric, f.rule) for f in verdict.failures] == [(metric, f"{rule}:value_{word.lower()}")]
    failure = verdict.failures[0]
    assert failure.value is not None and not math.isfinite(failure.value)
    assert failure.describe().startswith(f"{metric} is {word}: the model's output could not be scored")
    assert rule in failure.describe()


@pytest.mark.parametrize("metric", ["s.rise", "s.fall"])
@pytest.mark.parametrize(("base", "word"), [(NAN, "nan"), (INF, "inf"), (-INF, "-inf")])
def test_a_non_finite_base_fails_a_relative_rule(metric: str, base: float, word: str) -> None:
    verdict = judge(GATE, "high", {**GOOD, metric: (0.3, base)}, {"s"})
    assert not verdict.passed
    assert [(f.metric, f.rule) for f in verdict.failures] == [(metric, f"{RULE_OF[metric]}:base_{word}")]
    reason = verdict.failures[0].describe()
    assert "base value is" in reason and "cannot be checked" in reason


def test_a_non_finite_base_does_not_matter_to_an_absolute_rule() -> None:
    assert _judge(upper=(0.2, NAN), lower=(0.8, -INF)).passed


def test_a_missing_base_fails_a_required_relative_rule_but_not_an_optional_one() -> None:
    verdict = _judge(rise=(0.3, None), opt_rise=(0.3, None))
    assert [(f.metric, f.rule) for f in verdict.failures] == [("s.rise", "max_increase:base_missing")]
    assert "base value was not measured" in verdict.failures[0].describe()


def test_a_non_finite_optional_metric_still_fails() -> None:
    """optional: the metric may be absent; a measurement that came out NaN is not absent."""
    verdict = _judge(opt_upper=(NAN, None))
    assert [(f.metric, f.rule) for f in verdict.failures] == [("s.opt_upper", "max:value_nan")]


def test_a_threshold_with_two_rules_fails_both_on_nan() -> None:
    gate = GatePolicy.model_validate({"name": "two", "tiers": {
        t: {"thresholds": {"s.x": {"max": 0.5, "max_increase": 0.1}}} for t in ("minimal", "limited", "high")}})
    verdict = judge(gate, "limited", {"s.x": (NAN, 0.1)}, {"s"})
    assert [f.rule for f in verdict.failures] == ["max:value_nan", "max_increase:value_nan"]


def test_the_nan_adapter_fails_the_bundled_gate_on_every_tier() -> None:
    """The reported case: adapter weights all NaN, heldout_loss and max_loglik_gap NaN, the rest 0."""
    measured = {
        "task_quality.heldout_loss": (NAN, 0.94),
        "task_quality.exact_match": (0.0, 0.0),
        "bias.max_loglik_gap": (NAN, 0.02),
        "bias.max_output_divergence": (0.0, 0.0),
        "bias.max_answer_change_rate": (0.0, 0.0),
    }
    for tier in ("minimal", "limited", "high"):
        verdict = judge(load_gate(), tier, measured, {"task_quality", "bias"})  # type: ignore[arg-type]
        assert not verdict.passed
        assert [(f.metric, f.rule) for f in verdict.failures] == [
            ("bias.max_loglik_gap", "max_increase:value_nan"),
            ("task_quality.heldout_loss", "max_increase:value_nan")]
        assert verdict.failures[1].describe().startswith(
            "task_quality.heldout_loss is NaN: the model's output could not be scored")


def test_what_the_evaluator_publishes_names_the_non_finite_value() -> None:
    """On the wire (JSON) NaN becomes null; the rule still says it was NaN, never a bare null that reads as a
    pass or as 'not measured'."""
    from services.evaluator.engine.evaluate import EvaluationRun
    from services.evaluator.handlers import _verdict

    verdict = judge(GATE, "high", {**GOOD, "s.rise": (NAN, 0.2), "s.fall": (0.7, INF)}, {"s"})
    wire = _verdict(EvaluationRun([], verdict, 0.0), complete=True)
    document = json.loads(wire.model_dump_json())
    assert document["passed"] is False
    assert document["failures"] == [
        GateFailure(metric="s.fall", rule="max_decrease:base_inf", value=0.7, threshold=0.1, base=None)
        .model_dump(mode="json"),
        GateFailure(metric="s.rise", rule="max_increase:value_nan", value=None, threshold=0.1, base=0.2)
        .model_dump(mode="json"),
    ]
