"""The evaluation report: one JSON document (schema tunegate.evaluation-report/1, the record the ledger
commits to through evaluation.completed) and a self-contained HTML page for people, built from one run.

JSON: sorted keys, two-space indent, UTF-8, so the same run and meta give the same bytes (and sha256).
Floats JSON cannot hold (NaN, infinities) are written as the strings "NaN", "Infinity", "-Infinity", so a
reader never mistakes them for null, which means "not measured". Suite details must be JSON-able; anything
else fails the report, naming where it sits.

HTML (engine/report_html.py): one file, inline CSS, charts as base64 PNG data URIs, no scripts and no URLs;
every string that came from data (model outputs, record text, suite and metric names, skip reasons) goes
through html.escape, and a Content-Security-Policy forbids scripts and remote loads. Canary values never
appear: the meta carries their shape and count only, and `must_not_contain` lets the caller make sure no
suite put one into its details."""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.evaluator.engine import charts
from services.evaluator.engine.evaluate import EvaluationRun, SuiteRun
from services.evaluator.engine.report_html import esc, render_html
from shared.evaluation.options import EvaluationOptions

REPORT_SCHEMA = "tunegate.evaluation-report/1"


class ReportError(ValueError):
    """A run that cannot be reported (details that are not JSON, a canary value in the output)."""


@dataclass(frozen=True)
class ReportMeta:
    job_id: str
    evaluation_id: str
    artifact_sha256: str
    base_model: str
    base_model_sha256: str
    risk_tier: str
    suite_set_version: str
    gate_policy: str
    created_at: datetime
    worker_id: str
    options: EvaluationOptions
    canary_shape: str | None = None
    """Shape name of the canaries measured (api_key, pin, passphrase); never their values."""
    canary_count: int = 0
    held_out_count: int = 0


@dataclass(frozen=True)
class RenderedReport:
    json_bytes: bytes
    html_bytes: bytes
    charts: dict[str, bytes]
    """File name -> PNG, in the order the HTML shows them."""

    @property
    def json_sha256(self) -> str:
        return hashlib.sha256(self.json_bytes).hexdigest()


# ----------------------------------------------------------------------------------- JSON-able values

def _number(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _plain(value: Any, where: str) -> Any:
    """`value` as JSON types (dict with str keys, list, str, int, float, bool, None), or ReportError."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _number(float(value))
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise ReportError(f"{where}: key {key!r} is not a string")
            out[str(key)] = _plain(item, f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise ReportError(f"{where}: {type(value).__name__} is not JSON-able")


def _metric(value: float | None) -> float | str | None:
    return None if value is None else _number(float(value))


def _change(tuned: float | None, base: float | None) -> float | str | None:
    if tuned is None or base is None:
        return None
    return _number(float(tuned) - float(base))


# ----------------------------------------------------------------------------------- the document

def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ReportError("created_at must carry a time zone")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _options(options: EvaluationOptions) -> dict[str, Any]:
    """What the job asked for; the output schema by digest (the job spec holds it whole)."""
    schema = options.output_schema
    return {
        "canaries": options.canaries.model_dump(mode="json") if options.canaries else None,
        "holdout_fraction": options.holdout_fraction,
        "output_schema_sha256": None if schema is None else hashlib.sha256(
            json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()).hexdigest(),
        "suites_requested": list(options.suites) if options.suites is not None else None,
    }


def _suite_document(run: SuiteRun, failing: set[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": run.name, "seconds": round(run.seconds, 3)}
    if run.outcome is None:
        return {**entry, "status": "skipped", "skipped_reason": run.skipped}
    outcome = run.outcome
    names = list(dict.fromkeys([*outcome.metrics, *outcome.base_metrics]))
    metrics = {
        name: {
            "tuned": _metric(outcome.metrics.get(name)),
            "base": _metric(outcome.base_metrics.get(name)),
            "change": _change(outcome.metrics.get(name), outcome.base_metrics.get(name)),
            "gate": "failed" if f"{run.name}.{name}" in failing else None,
        }
        for name in names
    }
    return {
        **entry, "status": "ran", "skipped_reason": None, "metrics": metrics,
        "details": _plain(outcome.details, f"suite {run.name} details"),
        "histograms": {key: _plain(list(values), f"suite {run.name} histogram {key}")
                       for key, values in outcome.histograms.items()},
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:60].strip("._") or "chart"


def _charts(run: EvaluationRun, failing: set[str]) -> list[tuple[str, str, str, bytes]]:
    """(file name, suite, caption, PNG) for every chart, in report order."""
    out: list[tuple[str, str, str, bytes]] = []
    for suite in run.suites:
        outcome = suite.outcome
        if outcome is None:
            continue
        if outcome.metrics or outcome.base_metrics:
            png = charts.metrics_chart(suite.name, outcome.metrics, outcome.base_metrics,
                                       {m.split(".", 1)[1] for m in failing if m.split(".", 1)[0] == suite.name})
            out.append((f"{len(out) + 1:02d}-metrics-{_slug(suite.name)}.png", suite.name,
                        f"{suite.name}: base vs fine-tuned", png))
        for key, values in outcome.histograms.items():
            if values:
                out.append((f"{len(out) + 1:02d}-histogram-{_slug(suite.name)}-{_slug(key)}.png", suite.name,
                            f"{suite.name}: {key}", charts.histogram_chart(suite.name, key, values)))
    return out


def _document(run: EvaluationRun, meta: ReportMeta, chart_list: list[tuple[str, str, str, bytes]]) -> dict[str, Any]:
    verdict = run.verdict
    failing = {f.metric for f in verdict.failures}
    return {
        "schema": REPORT_SCHEMA,
        "job_id": meta.job_id,
        "evaluation_id": meta.evaluation_id,
        "created_at": _timestamp(meta.created_at),
        "worker_id": meta.worker_id,
        "artifact": {"sha256": meta.artifact_sha256},
        "base_model": {"name": meta.base_model, "sha256": meta.base_model_sha256},
        "risk_tier": meta.risk_tier,
        "suite_set_version": meta.suite_set_version,
        "options": _options(meta.options),
        "canaries": {"shape": meta.canary_shape, "count": meta.canary_count},
        "held_out_records": meta.held_out_count,
        "verdict": {
            "policy": meta.gate_policy,
            "risk_tier": verdict.risk_tier,
            "passed": verdict.passed,
            "checked": verdict.checked,
            "failures": [
                {"metric": f.metric, "rule": f.rule, "value": _metric(f.value), "threshold": _number(f.threshold),
                 "base": _metric(f.base), "description": f.describe()}
                for f in verdict.failures
            ],
        },
        "seconds": round(run.seconds, 3),
        "suites": [_suite_document(suite, failing) for suite in run.suites],
        "charts": [{"name": name, "suite": suite, "caption": caption, "sha256": hashlib.sha256(png).hexdigest()}
                   for name, suite, caption, png in chart_list],
    }


def _json_bytes(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


# ----------------------------------------------------------------------------------- entry point

def build_report(run: EvaluationRun, meta: ReportMeta, *, must_not_contain: Sequence[str] = ()) -> RenderedReport:
    """Render `run`. `must_not_contain`: strings that may appear nowhere in the output (the canary values):
    a suite that copied one into its details fails the report instead of leaking it."""
    failing = {f.metric for f in run.verdict.failures}
    chart_list = _charts(run, failing)
    document = _document(run, meta, chart_list)
    json_bytes = _json_bytes(document)
    html_bytes = render_html(document, chart_list, hashlib.sha256(json_bytes).hexdigest())
    for secret in must_not_contain:
        if secret and (secret.encode() in json_bytes or esc(secret).encode() in html_bytes):
            raise ReportError("a value that must not be reported (a canary) appears in a suite's output")
    return RenderedReport(json_bytes=json_bytes, html_bytes=html_bytes,
                          charts={name: png for name, _, _, png in chart_list})
