"""Suites registered by name in YAML (config/suites.yaml), each with its class and options, the way the
scanner registers recognizers; and the gate policy (config/gate.yaml). A class outside this package can be
registered too: `class: mypackage.module:MySuite`."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.evaluator.domain.gate import GatePolicy
from services.evaluator.domain.monitoring_policy import MonitoringPolicy
from services.evaluator.suites.base import Suite
from shared.validation import describe_validation_error
from shared.yaml_models import load_yaml_model

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
DEFAULT_SUITES = CONFIG_DIR / "suites.yaml"
DEFAULT_GATE = CONFIG_DIR / "gate.yaml"
DEFAULT_MONITORING = CONFIG_DIR / "monitoring.yaml"


class SuiteConfigError(ValueError):
    """A suite or gate configuration that cannot be used; the message says which file, entry and why."""


class SuiteEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    class_: str = Field(alias="class", pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict)


class SuiteFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    suites: list[SuiteEntry] = Field(min_length=1)


def _instantiate(entry: SuiteEntry, source: Path) -> Suite:
    module_name, class_name = entry.class_.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise SuiteConfigError(f"suites {source}: suite {entry.name!r}: cannot load {entry.class_}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Suite)):
        raise SuiteConfigError(f"suites {source}: suite {entry.name!r}: {entry.class_} is not a Suite")
    if cls.name != entry.name:
        raise SuiteConfigError(f"suites {source}: entry {entry.name!r} names class {entry.class_}, whose name "
                               f"is {cls.name!r}")
    try:
        config = cls.Config.model_validate(entry.config)
    except ValidationError as exc:
        raise SuiteConfigError(f"suites {source}: suite {entry.name!r}: "
                               f"{describe_validation_error(exc, root='config')}") from None
    return cls(config)


def load_suites(path: Path = DEFAULT_SUITES) -> tuple[str, dict[str, Suite]]:
    """(version of the suite set, enabled suites by name, in file order)."""
    document = load_yaml_model(path, SuiteFile, "suites", SuiteConfigError)
    names = [entry.name for entry in document.suites]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SuiteConfigError(f"suites {path}: suite(s) listed twice: {', '.join(duplicates)}")
    return document.version, {e.name: _instantiate(e, path) for e in document.suites if e.enabled}


def suite_names(path: Path | None = None) -> tuple[str, ...]:
    """Names of the enabled suites, in file order, without importing any suite class: the registry checks a
    job's `evaluation.suites` against them at intake, and must not load model code to do so. Without a path:
    the file the evaluator is configured with (TUNEGATE_EVALUATOR_SUITES_FILE), else the bundled one."""
    if path is None:
        from services.evaluator.settings import EvaluatorSettings

        path = EvaluatorSettings().suites_file or DEFAULT_SUITES
    document = load_yaml_model(path, SuiteFile, "suites", SuiteConfigError)
    return tuple(entry.name for entry in document.suites if entry.enabled)


def load_gate(path: Path = DEFAULT_GATE) -> GatePolicy:
    return load_yaml_model(path, GatePolicy, "gate policy", SuiteConfigError)


def select(suites: dict[str, Suite], wanted: list[str] | None) -> dict[str, Suite]:
    """The suites a job or a re-run asked for (all configured ones when None); unknown names are an error."""
    if wanted is None:
        return dict(suites)
    unknown = sorted(set(wanted) - set(suites))
    if unknown:
        raise SuiteConfigError(f"unknown suite(s) {', '.join(unknown)} (configured: {', '.join(suites)})")
    return {name: suite for name, suite in suites.items() if name in wanted}


def load_monitoring(path: Path | None = None, suites: dict[str, Suite] | None = None) -> MonitoringPolicy:
    """The monitoring thresholds. A file given (`path`) must schedule only configured `suites`; the bundled one
    is narrowed to them, so a custom suite set does not need a monitoring file of its own."""
    policy = load_yaml_model(path or DEFAULT_MONITORING, MonitoringPolicy, "monitoring policy", SuiteConfigError)
    if suites is None:
        return policy
    unknown = sorted(set(policy.scheduled.suites) - set(suites))
    if unknown and path is not None:
        raise SuiteConfigError(f"{path}: scheduled.suites names suites that are not configured: {', '.join(unknown)} "
                               f"(configured: {', '.join(suites)})")
    return policy.narrowed_to(suites)
