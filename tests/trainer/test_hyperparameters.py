"""Hyperparameters are validated before any model loads, with every problem named."""

from __future__ import annotations

import pytest

from shared.events.payloads import MethodSpec
from shared.training.hyperparameters import (
    HyperparameterError,
    check_data_fits,
    validate_hyperparameters,
)

LORA_SFT = MethodSpec(kind="sft", adapter="lora")


def problems(raw: dict[str, object], method: MethodSpec = LORA_SFT) -> list[str]:
    with pytest.raises(HyperparameterError) as caught:
        validate_hyperparameters(raw, method)
    return caught.value.problems


def test_defaults_are_valid_and_steps_follow_epochs() -> None:
    params = validate_hyperparameters({"epochs": 2, "batch_size": 4}, LORA_SFT)
    assert params.total_steps(10) == 6  # ceil(10/4) = 3 steps per epoch
    assert validate_hyperparameters({"max_steps": 7}, LORA_SFT).total_steps(1000) == 7


def test_unknown_key_is_named_with_the_known_ones() -> None:
    [problem] = problems({"learning_rte": 0.1})
    assert "hyperparameters.learning_rte: unknown key" in problem
    assert "learning_rate" in problem


def test_impossible_values_are_all_reported() -> None:
    found = problems({"learning_rate": -1, "lora_r": 0, "lora_dropout": 1.0})
    assert any(p.startswith("hyperparameters.learning_rate") and "-1" in p for p in found)
    assert any(p.startswith("hyperparameters.lora_r") for p in found)
    assert any(p.startswith("hyperparameters.lora_dropout") for p in found)


def test_settings_that_do_not_apply_to_the_method_are_refused() -> None:
    full = MethodSpec(kind="sft", adapter="full")
    assert "need method.adapter=lora" in problems({"lora_r": 8}, full)[0]
    assert "only DPO uses beta" in problems({"beta": 0.2})[0]
    assert "differential_privacy=true" in problems({"dp_target_epsilon": 3.0})[0]
    assert "not both" in problems({"max_steps": 3, "epochs": 1})[0]


def test_dp_needs_exactly_one_budget_and_a_lora_adapter() -> None:
    dp = MethodSpec(kind="sft", adapter="lora", differential_privacy=True)
    assert "exactly one of dp_target_epsilon" in problems({}, dp)[0]
    assert "exactly one of" in problems({"dp_target_epsilon": 3.0, "dp_noise_multiplier": 1.0}, dp)[0]
    full_dp = MethodSpec(kind="sft", adapter="full", differential_privacy=True)
    assert any("LoRA runs only" in p for p in problems({"dp_target_epsilon": 3.0}, full_dp))
    assert validate_hyperparameters({"dp_noise_multiplier": 1.1}, dp).dp_noise_multiplier == 1.1


def test_method_and_data_format_must_match() -> None:
    params = validate_hyperparameters({}, MethodSpec(kind="dpo"))
    with pytest.raises(HyperparameterError, match="method dpo needs preference records, the dataset holds chat"):
        check_data_fits(MethodSpec(kind="dpo"), params, "chat", 10)
    check_data_fits(LORA_SFT, params, "prompt_completion", 10)
    with pytest.raises(HyperparameterError, match="no records"):
        check_data_fits(LORA_SFT, params, "chat", 0)


def test_dp_delta_must_be_below_one_over_n() -> None:
    dp = MethodSpec(kind="sft", adapter="lora", differential_privacy=True)
    params = validate_hyperparameters({"dp_target_epsilon": 3.0, "dp_delta": 0.01, "batch_size": 4}, dp)
    with pytest.raises(HyperparameterError, match="dp_delta"):
        check_data_fits(dp, params, "chat", 200)
    check_data_fits(dp, params, "chat", 50)
