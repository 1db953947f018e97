"""YAML configuration files read into pydantic models, with errors that name the file, the field and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def describe_validation(exc: ValidationError, root: str) -> str:
    """'a.b: message; c: message', with `root` standing in for an error on the whole document."""
    return "; ".join(f"{'.'.join(str(part) for part in err['loc']) or root}: {err['msg']}" for err in exc.errors())


def load_yaml_model(path: Path, model: type[Model], what: str, error: type[Exception]) -> Model:
    """Read `path` as a YAML mapping and validate it as `model`; every failure raises `error` with
    `"<what> <path>: ..."`, so the caller's own error type reaches its users."""
    data: Any
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{what} {path}: cannot read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise error(f"{what} {path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise error(f"{what} {path}: expected a mapping at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{what} {path}: {describe_validation(exc, what)}") from None
