"""Job inputs a hostile tester sent that used to get through intake and fail (or worse, succeed) in training:
hyperparameters without an upper bound (lora_alpha 1e308 trained an adapter of NaN weights that passed the
release gate; a noise multiplier of 1e-300 divided Opacus' accountant by zero; `.inf` became null on the
wire), booleans read as numbers, seeds numpy refuses, and preference records mixing message lists with
strings (TRL crashed on them inside the trainer)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.datasets.formats import validate_record
from shared.events.payloads import MethodSpec
from shared.training.hyperparameters import (
    MAX_SEED,
    HyperparameterError,
    HyperParameters,
    check_data_fits,
    split_seed,
    validate_hyperparameters,
)


@pytest.mark.parametrize(("given", "said"), [
    ({"lora_alpha": 1e308}, "lora_alpha"),
    ({"lora_alpha": float("nan")}, "finite number"),
    ({"max_grad_norm": float("inf")}, "finite number"),
    ({"dp_max_grad_norm": 1e300}, "dp_max_grad_norm"),
    ({"dp_noise_multiplier": 1e-300}, "greater than or equal to 0.1"),
    ({"max_steps": True}, "max_steps: True is a boolean"),
    ({"batch_size": False}, "batch_size: False is a boolean"),
    ({"warmup_steps": 10**12}, "warmup_steps"),
])
def test_hyperparameters_out_of_any_sane_range_are_refused(given: dict[str, Any], said: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HyperParameters(**given)
    assert said in str(caught.value)


def test_yaml_numbers_read_as_strings_are_still_numbers() -> None:
    """PyYAML reads `2e-4` (no dot) as a string: job files written so must keep working."""
    assert HyperParameters(learning_rate="2e-4", batch_size="8").learning_rate == pytest.approx(2e-4)


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 2**63, True, 1.5])
def test_a_seed_numpy_cannot_take_is_refused_at_intake(seed: object) -> None:
    with pytest.raises(HyperparameterError, match=r"hyperparameters\.seed"):
        split_seed({"seed": seed, "max_steps": 2})
    assert split_seed({"seed": MAX_SEED})[0] == MAX_SEED


MESSAGES = [{"role": "assistant", "content": "hi"}]


@pytest.mark.parametrize(("record", "kind"), [
    ({"prompt": "Say hi", "chosen": MESSAGES, "rejected": "bye"}, "preference"),
    ({"prompt": [{"role": "user", "content": "Say hi"}], "chosen": "hi", "rejected": "bye"}, "preference"),
    ({"prompt": [{"role": "user", "content": "Say hi"}], "completion": "hi"}, "prompt_completion"),
])
def test_a_record_mixing_strings_and_message_lists_is_refused(record: dict[str, Any], kind: str) -> None:
    issues = validate_record(record, kind)
    assert len(issues) == 1 and "must be all strings or all lists of messages, not a mix" in issues[0]


@pytest.mark.parametrize(("record", "kind"), [
    ({"prompt": "Say hi", "chosen": "hi", "rejected": "bye"}, "preference"),
    ({"chosen": [{"role": "user", "content": "q"}, *MESSAGES], "rejected": [{"role": "user", "content": "q"},
                                                                            *MESSAGES]}, "preference"),
    ({"prompt": [{"role": "user", "content": "q"}], "completion": MESSAGES}, "prompt_completion"),
    ({"prompt": "q", "completion": "a"}, "prompt_completion"),
])
def test_records_of_one_form_pass(record: dict[str, Any], kind: str) -> None:
    assert validate_record(record, kind) == []


def test_an_empty_dataset_is_said_to_be_empty_not_of_the_wrong_kind() -> None:
    """It was refused as 'invalid hyperparameters: ... the dataset holds text records; ... no records'."""
    method = MethodSpec(kind="sft")
    params = validate_hyperparameters({}, method)
    with pytest.raises(HyperparameterError) as caught:
        check_data_fits(method, params, "text", 0)
    assert str(caught.value) == "the dataset does not fit the job: dataset: no records to train on"
