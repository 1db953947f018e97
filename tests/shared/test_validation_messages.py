"""The one validation-error formatter: location, root, prefix, unknown keys and shortened inputs."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.validation import describe_validation_error, validation_problems


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    inner: Inner


def _error(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate(data)
    return caught.value


def test_each_problem_names_its_dotted_location() -> None:
    exc = _error({"name": 3, "inner": {"size": "x"}})
    assert validation_problems(exc) == [
        "name: Input should be a valid string",
        "inner.size: Input should be a valid integer, unable to parse string as an integer",
    ]
    assert describe_validation_error(exc).count("; ") == 1


def test_root_prefix_and_custom_location() -> None:
    whole = _error([1, 2])
    assert describe_validation_error(whole, root="job file") == "job file: Input should be a valid dictionary or " \
        "instance of Outer"
    nested = _error({"name": "n", "inner": {"size": "x"}})
    assert describe_validation_error(nested, prefix="payload.").startswith("payload.inner.size: ")
    flag = describe_validation_error(nested, location=lambda loc: "--" + "-".join(map(str, loc)))
    assert flag.startswith("--inner-size: ")


def test_unknown_keys_list_the_known_ones_and_inputs_are_shortened() -> None:
    exc = _error({"name": "n", "inner": {"size": "y" * 10_000}, "colour": "red"})
    problems = validation_problems(exc, known_fields=Outer.model_fields, show_input=True)
    assert "colour: unknown key (known keys: inner, name)" in problems
    [size] = [p for p in problems if p.startswith("inner.size")]
    assert size.endswith("…)") and len(size) < 200
