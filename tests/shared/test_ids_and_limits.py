"""Ids that become paths match one strict pattern; YAML inputs are depth- and alias-limited; the home
folder refuses names that lead out of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from shared.config import Settings
from shared.events.payloads import TrainingRequested
from shared.ids import UnsafeIdError, new_job_id, validate_job_id
from shared.yaml_models import MAX_YAML_DEPTH, parse_yaml

HOSTILE_IDS = ["../../x", "/etc/passwd", "..", ".", "", "a/b", "a\\b", "job\x00", "-rf", "x" * 129, "é"]


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_hostile_ids_are_refused(value: str) -> None:
    with pytest.raises(UnsafeIdError, match="becomes a file name"):
        validate_job_id(value)


def test_generated_and_ordinary_ids_pass() -> None:
    for value in (new_job_id(), "job-1", "job_x", "baseline", "a.b-c_d", "x" * 128):
        assert validate_job_id(value) == value


def test_payloads_refuse_hostile_job_ids_on_receipt() -> None:
    data = {
        "job_id": "../../x",
        "base_model": "tiny",
        "method": {},
        "hyperparameters": {},
        "dataset": {"uri": "cas://sha256/" + "0" * 64, "sha256": "0" * 64},
        "fingerprint": "0" * 64,
        "scan_verdict": "clean",
        "approvers": ["a"],
    }
    with pytest.raises(ValidationError, match="job_id"):
        TrainingRequested.model_validate(data)


@pytest.mark.parametrize("part", ["/etc", "../outside", "a/../../b", ""])
def test_settings_path_stays_inside_home(tmp_path: Path, part: str) -> None:
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(ValueError, match="cannot name a place under TUNEGATE_HOME"):
        settings.path("training", part, "x")
    assert settings.path("training", "job-1", "x") == (tmp_path / "home" / "training" / "job-1" / "x").resolve()


def test_yaml_depth_and_aliases_are_limited() -> None:
    assert parse_yaml("a: " + "[" * (MAX_YAML_DEPTH - 1) + "]" * (MAX_YAML_DEPTH - 1)) is not None
    with pytest.raises(yaml.YAMLError, match=f"nested deeper than {MAX_YAML_DEPTH} levels"):
        parse_yaml("a: " + "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH)
    with pytest.raises(yaml.YAMLError, match="nested deeper"):
        parse_yaml("[" * 100_000)  # would be a RecursionError in PyYAML's composer
    laughs = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    with pytest.raises(yaml.YAMLError, match=r"aliases \(\*a\) are not accepted"):
        parse_yaml(laughs)
