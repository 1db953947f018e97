"""Hyperparameters are validated before any model loads, with every problem named, by one function that
the registry applies at intake and training.requested applies to its typed field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.events.payloads import ArtifactRef, MethodSpec, TrainingRequested
from shared.training.hyperparameters import (
    HyperparameterError,
    HyperParameters,
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


def test_an_rlhf_epoch_samples_every_prompt_once_in_whole_groups() -> None:
    method = MethodSpec.model_validate({"kind": "rlhf", "rlhf": {"num_generations": 4, "reward_functions": [
        {"kind": "length", "target_chars": 20}]}})
    params = validate_hyperparameters({"epochs": 2, "batch_size": 8, "gradient_accumulation_steps": 3}, method)
    assert method.samples_per_record == 4 and LORA_SFT.samples_per_record == 1
    assert params.records_per_step(method.samples_per_record) == 6  # 2 groups a batch, 3 batches a step
    assert params.total_steps(12, method.samples_per_record) == 4  # 12 prompts / 6 a step, twice
    small = validate_hyperparameters({"epochs": 1, "batch_size": 2}, method)
    assert small.records_per_step(4) == 1 and small.total_steps(5, 4) == 5  # never less than one group


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
    assert "only dpo and rlhf use beta" in problems({"beta": 0.2})[0]
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


def training_request(method: MethodSpec, hyperparameters: dict[str, object]) -> TrainingRequested:
    return TrainingRequested(job_id="job_1", base_model="tiny", method=method, fingerprint="0" * 64,
                             dataset=ArtifactRef(uri="cas://sha256/" + "0" * 64, sha256="0" * 64),
                             scan_verdict="clean", hyperparameters=hyperparameters)  # type: ignore[arg-type]


def test_training_requested_carries_them_typed_and_checked_against_the_method() -> None:
    request = training_request(LORA_SFT, {"max_steps": 10, "lora_r": 8})
    assert request.hyperparameters.max_steps == 10 and request.hyperparameters.batch_size == 8
    with pytest.raises(ValidationError) as caught:
        training_request(LORA_SFT, {"learning_rate": 0, "epochz": 1})
    assert "hyperparameters.learning_rate" in str(caught.value) and "epochz: unknown key" in str(caught.value)
    with pytest.raises(ValidationError, match="only dpo and rlhf use beta"):
        training_request(LORA_SFT, {"beta": 0.1})
    with pytest.raises(ValidationError, match=r"need method\.adapter=lora"):
        training_request(MethodSpec(adapter="full"), {"lora_r": 8})


def test_the_wire_form_holds_the_keys_given_so_it_survives_a_round_trip() -> None:
    full = MethodSpec(kind="cpt", adapter="full")
    request = training_request(full, {"max_steps": 12, "learning_rate": 1e-3})
    wire = request.model_dump(mode="json")
    assert wire["hyperparameters"] == {"max_steps": 12, "learning_rate": 1e-3}
    # Defaults such as lora_r must not come back as "given", or a full fine-tune would fail its own check.
    again = TrainingRequested.model_validate(wire)
    assert again == request and again.hyperparameters.model_fields_set == {"max_steps", "learning_rate"}
    resolved = again.hyperparameters.resolved()
    assert resolved["max_steps"] == 12 and resolved["lora_r"] == 16
    assert set(resolved) == set(HyperParameters.model_fields)
