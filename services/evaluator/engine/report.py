"""The evaluation report: one JSON document (schema tunegate.evaluation-report/1, the record the ledger
commits to through evaluation.completed) and a self-contained HTML page for people, built from one run.

JSON: sorted keys, two-space indent, UTF-8, so the same run and meta give the same bytes (and sha256).
Floats JSON cannot hold (NaN, infinities) are written as the strings "NaN", "Infinity", "-Infinity", so a
reader never mistakes them for null, which means "not measured". Suite details must be JSON-able; anything
else fails the report, naming where it sits.

HTML: one file, inline CSS, charts as base64 PNG data URIs, no scripts and no URLs; every string that came
from data (model outputs, record text, suite and metric names, skip reasons) goes through html.escape, and a
Content-Security-Policy forbids scripts and remote loads should anything slip past that. Canary values never
appear: the meta carries their shape and count only, and `must_not_contain` lets the caller make sure no
suite put one into its details."""

from __future__ import annotations

import base64
import hashlib
import html
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
from shared.evaluation.options import EvaluationOptions

REPORT_SCHEMA = "tunegate.evaluation-report/1"
MAX_DETAIL_DEPTH = 4
"""Deeper detail structures are shown as JSON text in the HTML."""
MAX_ROWS = 200
"""List items shown per detail list in the HTML; the JSON has all of them."""
MAX_TEXT = 4000
"""Characters shown per detail string in the HTML; the JSON has all of them."""


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


# ----------------------------------------------------------------------------------- HTML

def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _text(value: str) -> str:
    if len(value) <= MAX_TEXT:
        return esc(value)
    return f'{esc(value[:MAX_TEXT])}<span class="muted"> … {len(value) - MAX_TEXT} more characters in the JSON</span>'


def _detail(value: Any, depth: int = 0) -> str:
    """Nested dicts as key/value tables, lists of flat records as tables, other lists as numbered lists."""
    if isinstance(value, dict):
        if not value:
            return '<span class="muted">(empty)</span>'
        if depth >= MAX_DETAIL_DEPTH:
            return f"<pre>{_text(json.dumps(value, indent=1, ensure_ascii=False))}</pre>"
        rows = "".join(f"<tr><th>{esc(k)}</th><td>{_detail(v, depth + 1)}</td></tr>" for k, v in value.items())
        return f'<table class="kv">{rows}</table>'
    if isinstance(value, list):
        if not value:
            return '<span class="muted">(none)</span>'
        shown, rest = value[:MAX_ROWS], len(value) - MAX_ROWS
        more = f'<p class="muted">… {rest} more in the JSON</p>' if rest > 0 else ""
        flat = all(isinstance(r, dict) and all(not isinstance(v, dict | list) for v in r.values()) for r in shown)
        columns = list(dict.fromkeys(k for r in shown for k in r)) if flat else []
        if flat and 0 < len(columns) <= 12:
            head = "".join(f"<th>{esc(c)}</th>" for c in columns)
            body = "".join("<tr>" + "".join(f"<td>{_detail(r.get(c), depth + 1)}</td>" for c in columns) + "</tr>"
                           for r in shown)
            return f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}'
        items = "".join(f"<li>{_detail(item, depth + 1)}</li>" for item in shown)
        return f"<ol>{items}</ol>{more}"
    if isinstance(value, str):
        return f'<span class="text">{_text(value)}</span>'
    return esc(_fmt(value))


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;color:#1d1d1d;
padding:0 1rem;line-height:1.4}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;
vertical-align:top}th{background:#f5f5f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.fail td{background:#fdecea}.badge{display:inline-block;padding:.2rem .7rem;border-radius:4px;color:#fff;
font-weight:700}.pass{background:#2e7d32}.failed{background:#c0392b}.muted{color:#666}
.text{white-space:pre-wrap;word-break:break-word}pre{white-space:pre-wrap;word-break:break-word;background:#f8f8f8;
padding:.5rem}img{max-width:100%;display:block;margin:.8rem 0}table.kv th{width:14rem}
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _fail_class(failed: object) -> str:
    return ' class="fail"' if failed else ""


def _row(label: str, value: str) -> str:
    return f"<tr><th>{esc(label)}</th><td>{value}</td></tr>"


def _summary(document: dict[str, Any]) -> str:
    options = document["options"]
    canaries = document["canaries"]
    planted = (f"{canaries['count']} × {esc(canaries['shape'])}" if canaries["shape"] else "none planted")
    requested = options["suites_requested"]
    rows = [
        _row("Job", esc(document["job_id"])),
        _row("Evaluation", esc(document["evaluation_id"])),
        _row("Artefact sha256", f"<code>{esc(document['artifact']['sha256'])}</code>"),
        _row("Base model", f"{esc(document['base_model']['name'])} "
                           f"<code>{esc(document['base_model']['sha256'])}</code>"),
        _row("Risk tier", esc(document["risk_tier"])),
        _row("Gate policy", esc(document["verdict"]["policy"])),
        _row("Suite set version", esc(document["suite_set_version"])),
        _row("Suites requested", esc(", ".join(requested)) if requested else "all configured"),
        _row("Canaries", planted),
        _row("Held-out records", esc(document["held_out_records"])),
        _row("Hold-out fraction", esc(_fmt(options["holdout_fraction"]))),
        _row("Output schema", f"<code>{esc(options['output_schema_sha256'])}</code>"
             if options["output_schema_sha256"] else "none"),
        _row("Created", esc(document["created_at"])),
        _row("Worker", esc(document["worker_id"])),
        _row("Evaluation time", f"{document['seconds']:.1f} s"),
    ]
    return f'<table class="kv">{"".join(rows)}</table>'


def _verdict(verdict: dict[str, Any]) -> str:
    if verdict["passed"] and not verdict["checked"]:
        return (f'<p><span class="badge pass">PASSED</span> no threshold of tier {esc(verdict["risk_tier"])} '
                "applies to the suites that ran.</p>")
    if verdict["passed"]:
        return (f'<p><span class="badge pass">PASSED</span> all {verdict["checked"]} thresholds of tier '
                f'{esc(verdict["risk_tier"])} held.</p>')
    head = "".join(f"<th>{h}</th>" for h in ("Metric", "Rule", "Fine-tuned", "Base", "Threshold", "Why"))
    rows = "".join(
        f'<tr class="fail"><td>{esc(f["metric"])}</td><td>{esc(f["rule"])}</td><td class="num">{esc(_fmt(f["value"]))}'
        f'</td><td class="num">{esc(_fmt(f["base"]))}</td><td class="num">{esc(_fmt(f["threshold"]))}</td>'
        f'<td>{esc(f["description"])}</td></tr>'
        for f in verdict["failures"])
    return (f'<p><span class="badge failed">FAILED</span> {len(verdict["failures"])} of {verdict["checked"]} '
            f'checks of tier {esc(verdict["risk_tier"])} failed.</p>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _overview(suites: list[dict[str, Any]], failures: list[dict[str, Any]]) -> str:
    rows = []
    for suite in suites:
        # Counted from the verdict: a metric the gate required but the suite never produced fails too.
        failed = sum(1 for f in failures if f["metric"].split(".", 1)[0] == suite["name"])
        if suite["status"] == "skipped":
            status = f'skipped: <span class="text">{esc(suite["skipped_reason"])}</span>'
        else:
            status = f'ran, {len(suite["metrics"])} metrics'
        rows.append(f'<tr{_fail_class(failed)}><td>{esc(suite["name"])}</td><td>{status}</td>'
                    f'<td class="num">{suite["seconds"]:.2f}</td><td class="num">{failed}</td></tr>')
    return ("<table><thead><tr><th>Suite</th><th>Status</th><th>Seconds</th><th>Gate failures</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _suite_section(suite: dict[str, Any], images: list[tuple[str, str, bytes]]) -> str:
    parts = [f"<h2>{esc(suite['name'])}</h2>"]
    if suite["status"] == "skipped":
        parts.append(f'<p class="muted">Not run: <span class="text">{esc(suite["skipped_reason"])}</span></p>')
        return "".join(parts)
    rows = "".join(
        f'<tr{_fail_class(m["gate"])}><td>{esc(name)}</td><td class="num">{esc(_fmt(m["tuned"]))}</td>'
        f'<td class="num">{esc(_fmt(m["base"]))}</td><td class="num">{esc(_fmt(m["change"]))}</td>'
        f'<td>{"failed" if m["gate"] else ""}</td></tr>'
        for name, m in suite["metrics"].items())
    parts.append(f'<p class="muted">{suite["seconds"]:.2f} s</p>')
    if rows:
        parts.append("<table><thead><tr><th>Metric</th><th>Fine-tuned</th><th>Base</th><th>Change</th>"
                     f"<th>Gate</th></tr></thead><tbody>{rows}</tbody></table>")
    for caption, name, png in images:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
                     f"<figcaption class=\"muted\">{esc(caption)} ({esc(name)})</figcaption></figure>")
    empty = [key for key, values in suite["histograms"].items() if not values]
    if empty:
        parts.append(f'<p class="muted">No values for: {esc(", ".join(empty))}</p>')
    if suite["details"]:
        parts.append(f"<h3>Details</h3>{_detail(suite['details'])}")
    return "".join(parts)


def _html(document: dict[str, Any], chart_list: list[tuple[str, str, str, bytes]], json_sha256: str) -> bytes:
    images: dict[str, list[tuple[str, str, bytes]]] = {}
    for name, suite, caption, png in chart_list:
        images.setdefault(suite, []).append((caption, name, png))
    body = [
        f"<h1>Evaluation report</h1><p class=\"muted\">{esc(document['job_id'])} · "
        f"{esc(document['evaluation_id'])}</p>",
        _verdict(document["verdict"]),
        _summary(document),
        "<h2>Suites</h2>", _overview(document["suites"], document["verdict"]["failures"]),
        *(_suite_section(suite, images.get(suite["name"], [])) for suite in document["suites"]),
        f'<p class="muted">{esc(REPORT_SCHEMA)} · JSON report sha256 <code>{esc(json_sha256)}</code></p>',
    ]
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>Evaluation report {esc(document['job_id'])}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    return page.encode("utf-8")


# ----------------------------------------------------------------------------------- entry point

def build_report(run: EvaluationRun, meta: ReportMeta, *, must_not_contain: Sequence[str] = ()) -> RenderedReport:
    """Render `run`. `must_not_contain`: strings that may appear nowhere in the output (the canary values):
    a suite that copied one into its details fails the report instead of leaking it."""
    failing = {f.metric for f in run.verdict.failures}
    chart_list = _charts(run, failing)
    document = _document(run, meta, chart_list)
    json_bytes = _json_bytes(document)
    html_bytes = _html(document, chart_list, hashlib.sha256(json_bytes).hexdigest())
    for secret in must_not_contain:
        if secret and (secret.encode() in json_bytes or esc(secret).encode() in html_bytes):
            raise ReportError("a value that must not be reported (a canary) appears in a suite's output")
    return RenderedReport(json_bytes=json_bytes, html_bytes=html_bytes,
                          charts={name: png for name, _, _, png in chart_list})
