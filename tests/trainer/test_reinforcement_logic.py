"""RLHF's logic without training: job options, rule-based rewards, the KL guard, prompts, reward-model
metrics (pairwise accuracy, calibration, length bias, reward hacking)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from services.evaluator.domain.reward_metrics import (
    HackingCheck,
    expected_calibration_error,
    length_bias,
    pairwise_accuracy,
)
from services.trainer.domain.kl_bound import KlBoundExceeded, KlGuard
from services.trainer.engine.reinforcement import RlhfTraining, prompt_of
from shared.events.payloads import MethodSpec
from shared.events.reinforcement import RlhfOptions
from shared.training.hyperparameters import HyperparameterError, check_data_fits, validate_hyperparameters
from shared.training.rewards import rule_rewards

SCHEMA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}


def test_rlhf_needs_its_options_and_only_rlhf_takes_them() -> None:
    with pytest.raises(ValidationError, match=r"method\.rlhf: an rlhf job declares"):
        MethodSpec(kind="rlhf")
    with pytest.raises(ValidationError, match=r"only method\.kind rlhf takes these options"):
        MethodSpec(kind="dpo", rlhf={"reward_functions": [{"kind": "length", "target_chars": 5}]})
    with pytest.raises(ValidationError, match="give reward_model_version, reward_functions or both"):
        RlhfOptions()
    with pytest.raises(ValidationError, match="String should match pattern"):
        RlhfOptions(reward_model_version="../etc")
    assert MethodSpec(kind="reward_model").rlhf is None


def test_reward_function_options_must_fit_their_kind() -> None:
    with pytest.raises(ValidationError, match="keywords does not apply to it"):
        RlhfOptions(reward_functions=[{"kind": "length", "target_chars": 5, "keywords": ["x"]}])
    with pytest.raises(ValidationError, match="json_schema: needs json_schema"):
        RlhfOptions(reward_functions=[{"kind": "json_schema"}])
    with pytest.raises(ValidationError, match="needs at least one non-empty keyword"):
        RlhfOptions(reward_functions=[{"kind": "keywords", "keywords": [" "]}])


def test_rule_rewards_score_completions_in_zero_to_one() -> None:
    options = RlhfOptions(reward_functions=[
        {"kind": "json_schema", "json_schema": SCHEMA},
        {"kind": "length", "target_chars": 10, "weight": 2.0},
        {"kind": "keywords", "keywords": ["refund", "Order"]},
    ])
    (n1, _, schema), (n2, w2, length), (_, _, keywords) = rule_rewards(options)
    assert (n1, n2, w2) == ("rule_0_json_schema", "rule_1_length", 2.0)
    assert [schema(t) for t in ('{"name": "x"}', '{"nom": 1}', "not json")] == [1.0, 0.5, 0.0]
    assert schema("[" * 3_000 + "]" * 3_000) == 0.0  # a policy's output nested past json's recursion: not JSON
    assert [length(t) for t in ("x" * 10, "x" * 15, "x" * 30, "")] == [1.0, 0.5, 0.0, 0.0]
    assert [keywords(t) for t in ("your ORDER and refund", "order", "nothing")] == [1.0, 0.5, 0.0]


def test_kl_guard_fails_or_stops_past_the_bound() -> None:
    stop = KlGuard(0.5, "stop")
    assert [stop.observe(1, 0.2), stop.observe(2, 0.7)] == [False, True]
    assert stop.exceeded_at == 2 and stop.highest == 0.7
    fail = KlGuard(0.5, "fail")
    assert not fail.observe(1, 0.5)
    with pytest.raises(KlBoundExceeded, match=r"reached 0\.6000 at step 3, above the job.s kl_bound 0\.5"):
        fail.observe(3, 0.6)


def test_methods_take_the_data_and_hyperparameters_they_can_use() -> None:
    rlhf = MethodSpec(kind="rlhf", rlhf={"reward_functions": [{"kind": "length", "target_chars": 5}]})
    assert validate_hyperparameters({"beta": 0.05}, rlhf).beta == 0.05
    with pytest.raises(HyperparameterError, match="only dpo and rlhf use beta"):
        validate_hyperparameters({"beta": 0.05}, MethodSpec(kind="reward_model"))
    with pytest.raises(HyperparameterError, match="DP-SGD is supported for sft and cpt, not rlhf"):
        validate_hyperparameters({"dp_noise_multiplier": 1.0},
                                 rlhf.model_copy(update={"differential_privacy": True}))
    params = validate_hyperparameters({}, rlhf)
    check_data_fits(rlhf, params, "chat", 4)
    with pytest.raises(HyperparameterError, match="method reward_model needs preference records"):
        check_data_fits(MethodSpec(kind="reward_model"), params, "chat", 4)


def test_prompts_are_read_from_every_accepted_record_shape() -> None:
    user = [{"role": "user", "content": "hi"}]
    assert prompt_of({"prompt": "Q:", "completion": "A"}) == "Q:"
    assert prompt_of({"messages": [*user, {"role": "assistant", "content": "yo"}]}) == user
    assert prompt_of({"input": {"messages": user}, "preferred_output": [], "non_preferred_output": []}) == user


def test_reward_model_metrics() -> None:
    chosen, rejected = [2.0, 1.0, 0.0, 3.0], [0.0, 2.0, -1.0, 1.0]
    assert pairwise_accuracy(chosen, rejected) == 0.75
    # A model sure and right about every pair is calibrated; one sure and wrong half the time is not.
    assert expected_calibration_error([20.0] * 4, [0.0] * 4) < 1e-6
    assert expected_calibration_error([20.0, 0.0], [0.0, 20.0]) == pytest.approx(0.5)
    bias = length_bias(chosen, rejected, chosen_chars=[10, 10, 5, 5], rejected_chars=[5, 5, 10, 10])
    assert (bias.pairs, bias.labels_prefer_longer, bias.model_prefers_longer) == (4, 0.5, 0.25)
    assert math.isclose(bias.excess, -0.25)


def test_reward_hacking_is_reward_up_while_quality_down() -> None:
    assert HackingCheck(0.2, 0.9, 0.8, 0.5, tolerance=0.05).hacked
    assert not HackingCheck(0.2, 0.9, 0.8, 0.78, tolerance=0.05).hacked
    assert not HackingCheck(0.9, 0.2, 0.8, 0.1, tolerance=0.05).hacked


def test_rlhf_options_survive_the_wire() -> None:
    method = MethodSpec(kind="rlhf", rlhf={"reward_functions": [{"kind": "length", "target_chars": 5}]})
    assert MethodSpec.model_validate(method.model_dump(mode="json")) == method


def test_the_rlhf_strategy_watches_kl_and_keeps_rewards() -> None:
    options = RlhfOptions(reward_functions=[{"kind": "length", "target_chars": 5}], kl_bound=0.5)
    strategy = RlhfTraining(options)
    assert not strategy._watch(1, {"reward": 0.2, "kl": 0.1, "loss": 0.0})
    with pytest.raises(KlBoundExceeded):
        strategy._watch(2, {"reward": 0.4, "kl": 0.9})
    assert strategy.rewards == [0.2, 0.4] and strategy.guard.highest == 0.9
    stopping = RlhfTraining(options.model_copy(update={"on_kl_exceeded": "stop"}))
    assert stopping._watch(5, {"kl": 0.6}) and stopping.guard.exceeded_at == 5
