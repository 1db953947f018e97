"""The evaluation report's HTML page for people (services/evaluator/engine/report.py builds the JSON record and
calls `render_html`): one file, inline CSS, charts as base64 PNG data URIs, no scripts and no URLs; every
string that came from data goes through html.escape, and a Content-Security-Policy forbids scripts and
remote loads should anything slip past that."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

MAX_DETAIL_DEPTH = 4
"""Deeper detail structures are shown as JSON text in the HTML."""
MAX_ROWS = 200
"""List items shown per detail list in the HTML; the JSON has all of them."""
MAX_TEXT = 4000
"""Characters shown per detail string in the HTML; the JSON has all of them."""


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


def render_html(document: dict[str, Any], chart_list: list[tuple[str, str, str, bytes]], json_sha256: str) -> bytes:
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
        f'<p class="muted">{esc(document["schema"])} · JSON report sha256 <code>{esc(json_sha256)}</code></p>',
    ]
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>Evaluation report {esc(document['job_id'])}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
    return page.encode("utf-8")
