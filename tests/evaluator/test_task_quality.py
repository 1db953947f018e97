"""Task quality: the pure measures (exact match, JSON Schema conformance, token-weighted held-out loss) and
the suite end to end on the `tiny` base fine-tuned on return requests, with held-out requests it never saw.
Training made the task's answers likelier, its outputs valid JSON of the declared schema, and some of them
exactly right; the base does none of that."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace

import pytest

from services.evaluator.domain.gate import judge
from services.evaluator.domain.statistics import perplexity, token_weighted_nll
from services.evaluator.domain.structured_output import NOT_JSON, OutputSchema, parse_json_output
from services.evaluator.domain.text_metrics import exact_match, normalise_whitespace
from services.evaluator.engine.models import ModelPair, load_pair
from services.evaluator.suites.base import EvaluationInputs, SuiteOutcome
from services.evaluator.suites.registry import load_gate
from services.evaluator.suites.task_quality import TaskQualityConfig, TaskQualitySuite
from shared.evaluation.options import EvaluationOptions
from shared.models.bases import BaseModelInfo
from tests.evaluator.evaluator_support import inputs_for, train
from tests.evaluator.quality_data import (
    RETURN_SCHEMA,
    RETURN_TRAINING,
    office_notes,
    return_records,
    single_threaded_torch,
)

# ----------------------------------------------------------------------------------- pure measures


def test_exact_match_ignores_whitespace_runs_only() -> None:
    assert normalise_whitespace("  a\n\tb   c ") == "a b c"
    assert exact_match('{"item": "mug"}\n', '{"item":  "mug"}')
    assert not exact_match('{"item": "Mug"}', '{"item": "mug"}')  # case is content
    assert not exact_match('{"item":"mug"}', '{"item": "mug"}')  # so is a missing space inside a word run


def test_schema_check_strict_and_lenient() -> None:
    schema = OutputSchema(RETURN_SCHEMA)
    assert schema.check(' {"item": "mug", "status": "approved"} \n').valid
    assert schema.check('{"item": "mug"}').reason == "required"
    assert schema.check('{"item": "mug", "status": "maybe"}').reason == "enum"
    assert schema.check('{"item": "mug", "status": "approved", "x": 1}').reason == "additionalProperties"
    fenced = 'Here it is: ```json\n{"item": "mug", "status": "approved"}\n``` done'
    assert schema.check(fenced).reason == NOT_JSON  # strict: a program parsing the output would fail
    assert OutputSchema(RETURN_SCHEMA, lenient=True).check(fenced).valid
    assert parse_json_output("{broken", lenient=True) == (False, None)
    deep = "The answer: " + "[" * 3_000 + "]" * 3_000  # a model's output nested past json's recursion limit
    assert parse_json_output(deep) == (False, None)
    parsed, value = parse_json_output(deep, lenient=True)  # the first document it can decode: an inner array
    assert parsed and isinstance(value, list)
    with pytest.raises(Exception, match="is not valid"):
        OutputSchema({"type": "no-such-type"})


def test_heldout_loss_weighs_every_token_alike() -> None:
    # two records: 1 token at NLL 4, 3 tokens at NLL 1 each -> (4 + 3) / 4 tokens, not the mean of 4 and 1
    assert token_weighted_nll([(-4.0, 1), (-3.0, 3)]) == pytest.approx(7 / 4)
    assert token_weighted_nll([(0.0, 0)]) is None
    assert perplexity(math.log(5.0)) == pytest.approx(5.0)
    assert math.isfinite(perplexity(10_000.0))


# ----------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def pair(tiny_base: BaseModelInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelPair]:
    with single_threaded_torch():
        model_dir = train(tiny_base, tmp_path_factory.mktemp("task_quality"), return_records(48, seed=1), "chat",
                          hyperparameters=RETURN_TRAINING)
        yield load_pair(tiny_base, model_dir)


@pytest.fixture(scope="module")
def inputs(tiny_base: BaseModelInfo, pair: ModelPair) -> EvaluationInputs:
    return inputs_for(tiny_base, tiny_base.path, return_records(48, seed=1), "chat",
                      held_out=return_records(16, seed=7), pair=pair,
                      options=EvaluationOptions(output_schema=RETURN_SCHEMA))


@pytest.fixture(scope="module")
def outcome(inputs: EvaluationInputs) -> SuiteOutcome:
    suite = TaskQualitySuite(TaskQualityConfig(max_new_tokens=24))
    assert suite.applies_to(inputs) is None
    return suite.run(inputs)


def test_fine_tuning_lowers_held_out_loss(outcome: SuiteOutcome) -> None:
    tuned, base = outcome.metrics, outcome.base_metrics
    # measured on tiny: tuned 0.26 nats/token (perplexity 1.3), base 1.68 (perplexity 5.4)
    assert tuned["heldout_loss"] < 0.6 < 1.2 < base["heldout_loss"]
    for side in (tuned, base):
        assert side["heldout_perplexity"] == pytest.approx(math.exp(side["heldout_loss"]))
    assert outcome.details["records"] == 16 and outcome.details["reference_tokens"] > 16 * 5
    assert len(outcome.histograms["heldout_nll_tuned"]) == 16
    json.dumps(outcome.details)  # the report stores it as JSON


def test_fine_tuned_outputs_follow_the_schema_and_some_are_exact(outcome: SuiteOutcome) -> None:
    tuned, base = outcome.metrics, outcome.base_metrics
    # measured on tiny: tuned all 16 outputs valid, 5/16 exactly right; the base writes no JSON at all
    assert tuned["schema_valid_rate"] >= 0.9 and base["schema_valid_rate"] == 0.0
    assert outcome.details["base"]["schema_failures"] == {NOT_JSON: 16}
    assert 0.1 <= tuned["exact_match"] < 1.0 and base["exact_match"] == 0.0
    assert outcome.details["tuned"]["exact_matches"] == round(16 * tuned["exact_match"])


def test_the_measured_fine_tune_passes_the_gate_at_every_tier(outcome: SuiteOutcome) -> None:
    measured = {f"task_quality.{m}": (v, outcome.base_metrics.get(m)) for m, v in outcome.metrics.items()}
    gate = load_gate()
    for tier in ("minimal", "limited", "high"):
        assert {"task_quality.heldout_loss", "task_quality.schema_valid_rate"} <= set(gate.tiers[tier].thresholds)
        verdict = judge(gate, tier, measured, {"task_quality"})
        assert verdict.passed and verdict.checked == 3, [f.describe() for f in verdict.failures]
    worse = {**measured, "task_quality.heldout_loss": (2.0, outcome.base_metrics["heldout_loss"])}
    assert not judge(gate, "high", worse, {"task_quality"}).passed  # worse than the base on unseen data
    no_schema = {**measured, "task_quality.schema_valid_rate": (None, None)}
    assert judge(gate, "high", no_schema, {"task_quality"}).passed  # no schema declared: nothing to check


def test_without_a_schema_there_is_no_schema_rate(inputs: EvaluationInputs) -> None:
    outcome = TaskQualitySuite(TaskQualityConfig(max_new_tokens=4)).run(replace(inputs, options=EvaluationOptions()))
    assert outcome.metrics["schema_valid_rate"] is None and outcome.base_metrics["schema_valid_rate"] is None
    assert outcome.metrics["exact_match"] == 0.0  # 4 tokens cannot hold a whole answer


def test_text_records_are_split_into_prompt_and_continuation(inputs: EvaluationInputs) -> None:
    text = replace(inputs, kind="text", held_out_records=office_notes(6, seed=3), options=EvaluationOptions())
    outcome = TaskQualitySuite(TaskQualityConfig(max_new_tokens=8)).run(text)
    assert outcome.details["records"] == 6 and outcome.details["reference_tokens"] > 6 * 4
    # the base was pretrained on such notes, the fine-tune learnt to answer JSON: the base predicts them better
    # (measured on tiny: base 1.69 nats/token, fine-tuned 2.87)
    assert outcome.base_metrics["heldout_loss"] < outcome.metrics["heldout_loss"]


def test_no_held_out_records_is_a_reason_not_a_failure(inputs: EvaluationInputs) -> None:
    suite = TaskQualitySuite(TaskQualityConfig())
    assert "no held-out records" in (suite.applies_to(replace(inputs, held_out_records=[])) or "")
    preference = replace(inputs, kind="preference", held_out_records=[{"prompt": "p", "chosen": "a", "rejected": "b"}])
    assert "no reference answer" in (suite.applies_to(preference) or "")

