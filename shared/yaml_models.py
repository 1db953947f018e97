"""Every YAML input (job files, manifests, policies, recognizer registries, the base-model catalogue) is read
here: size-capped, depth-capped, without anchors/aliases, and validated into pydantic models with errors
that name the file, the field and why.

PyYAML composes nested collections recursively, so a document of a few thousand '[' would otherwise end in a
RecursionError traceback; aliases let a few hundred bytes expand into an exponentially large structure
once serialised ("billion laughs"). Configuration and job files need neither."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from shared.validation import describe_validation_error

Model = TypeVar("Model", bound=BaseModel)

MAX_YAML_BYTES = 1 << 20
"""Largest YAML document read (1 MiB): far above any real policy, manifest or job file."""
MAX_YAML_DEPTH = 32
"""Deepest nesting of mappings and sequences accepted."""


class YamlLimitError(yaml.YAMLError):
    """A document refused for its shape (too deep, aliases), not its syntax."""


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and counts nesting while composing, before Python's stack does."""

    max_depth = MAX_YAML_DEPTH

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YamlLimitError(f"aliases (*{event.anchor}) are not accepted{_where(event.start_mark)}")
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                mark = self.peek_event().start_mark
                raise YamlLimitError(f"nested deeper than {self.max_depth} levels{_where(mark)}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _where(mark: Any) -> str:
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def parse_yaml(text: str) -> Any:
    """One YAML document from `text` with the depth and alias limits; raises yaml.YAMLError."""
    loader = _LimitedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_limited_text(path: Path, max_bytes: int = MAX_YAML_BYTES) -> str:
    """A regular file's text, refusing files over `max_bytes` before reading them; raises OSError or
    ValueError with a message that says which limit."""
    # O_NONBLOCK: a FIFO in place of a config file must not hang the reader.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > max_bytes:
            raise ValueError(f"{info.st_size} bytes is over the limit of {max_bytes} bytes")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"more than the limit of {max_bytes} bytes")
    return data.decode("utf-8")


def _read_text(path: Path, what: str, error: type[Exception], max_bytes: int) -> str:
    """`read_limited_text`, its failures raised as `error` with `"<what> <path>: ..."`."""
    try:
        return read_limited_text(path, max_bytes)
    except OSError as exc:
        raise error(f"{what} {path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:
        raise error(f"{what} {path}: cannot read ({exc})") from None


def load_yaml_document(path: Path, what: str, error: type[Exception], *, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Read `path` (at most `max_bytes`, a regular UTF-8 file) and parse it with the YAML limits; every failure
    raises `error` with `"<what> <path>: ..."`."""
    text = _read_text(path, what, error, max_bytes)
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        raise error(f"{what} {path}: not valid YAML ({exc})") from None


def parse_yaml_model(text: str, source: str, model: type[Model], what: str, error: type[Exception]) -> Model:
    """Validate YAML `text` (from `source`) as `model`; every failure raises `error` with
    `"<what> <source>: ..."`, so the caller's own error type reaches its users."""
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise error(f"{what} {source}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise error(f"{what} {source}: expected a mapping at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{what} {source}: {describe_validation_error(exc, root=what)}") from None


def load_yaml_model(
    path: Path, model: type[Model], what: str, error: type[Exception], *, max_bytes: int = MAX_YAML_BYTES
) -> Model:
    """Read `path` (at most `max_bytes`) and validate it as `model`, like `parse_yaml_model`."""
    return parse_yaml_model(_read_text(path, what, error, max_bytes), str(path), model, what, error)
