"""The evidence pack as one self-contained HTML page: no scripts, fonts or styles from elsewhere; headings,
table captions and high-contrast status labels (text, not colour alone); prints to PDF. Every obligation
links to the evidence it rests on, every piece of evidence to the audit-ledger entries that back it, and
every entry shows whether its inclusion proof verified (the proofs themselves are in evidence.json)."""

from __future__ import annotations

from html import escape

from services.registry.evidence.check import Evidence, ObligationResult
from services.registry.evidence.pack import EvidencePack

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#111;background:#fff;margin:2rem;
line-height:1.45;max-width:75rem}
h1{font-size:1.6rem}h2{font-size:1.3rem;margin-top:2rem;border-bottom:2px solid #333}h3{font-size:1.05rem}
table{border-collapse:collapse;width:100%;margin:0.5rem 0 1.5rem}caption{text-align:left;font-weight:600;
padding:0.3rem 0}th,td{border:1px solid #666;padding:0.3rem 0.5rem;text-align:left;vertical-align:top}
th{background:#e8e8e8}code{font-size:0.85em;word-break:break-all}a{color:#0a3d91}
.status{font-weight:700;padding:0 0.3rem;border-radius:3px;white-space:nowrap}
.evidenced,.present,.verified{background:#d7f0dc;color:#0b3d17}.partly,.partial{background:#fff1c2;color:#4d3800}
.gap,.absent,.failed{background:#fbd5d5;color:#6b0000}.not_applicable,.unchecked{background:#e8e8e8;color:#222}
ul{margin:0.2rem 0}section{break-inside:avoid-page}
@media print{body{margin:1cm}a{color:#111;text-decoration:none}}
"""


def _status(value: str) -> str:
    return f'<span class="status {escape(value)}">{escape(value.replace("_", " "))}</span>'


def _value(value: object) -> str:
    if isinstance(value, dict) and "uri" in value:
        return f"{value['uri']} (sha256 {value.get('sha256')})"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


def _obligation_row(o: ObligationResult) -> str:
    links = ", ".join(f'<a href="#ev-{escape(k)}">{escape(k)}</a>' for k in o.evidence)
    why = o.note or "; ".join(o.gaps)
    return (f'<tr id="ob-{escape(o.id)}"><td>{escape(o.framework)}</td><td>{escape(o.ref)}</td>'
            f"<td>{escape(o.title)}</td><td>{_status(o.status)}</td><td>{links}</td><td>{escape(why)}</td></tr>")


def _evidence_section(e: Evidence, cited_by: list[ObligationResult]) -> str:
    parts = [f'<section id="ev-{escape(e.kind)}"><h3>{escape(e.title)} {_status(e.status)}</h3>',
             f"<p>{escape(e.summary)}</p>"]
    if e.missing:
        parts.append(f"<p><strong>Missing:</strong> {escape(e.missing)}</p>")
    if e.items:
        parts.append("<ul>")
        for item in e.items:
            where = f" <code>{escape(item.ref)}</code>" if item.ref else ""
            digest = f" sha256 <code>{escape(item.sha256)}</code>" if item.sha256 else ""
            parts.append(f"<li><strong>{escape(item.label)}</strong>: {escape(item.detail)}{where}{digest}</li>")
        parts.append("</ul>")
    if e.ledger_entries:
        refs = ", ".join(f'<a href="#entry-{escape(i)}"><code>{escape(i)}</code></a>' for i in e.ledger_entries)
        parts.append(f"<p>Audit-ledger entries: {refs}</p>")
    if cited_by:
        refs = ", ".join(f'<a href="#ob-{escape(o.id)}">{escape(o.framework)} {escape(o.ref)}</a>' for o in cited_by)
        parts.append(f"<p>Cited by: {refs}</p>")
    parts.append("</section>")
    return "".join(parts)


def render_html(pack: EvidencePack) -> str:
    s = pack.summary
    m = pack.model
    rows = "".join(_obligation_row(o) for o in pack.obligations)
    sections = "".join(
        _evidence_section(e, [o for o in pack.obligations if kind in o.evidence]) for kind, e in pack.evidence.items()
    )
    entries = "".join(
        f'<tr id="entry-{escape(e.event_id)}"><td>{e.sequence}</td><td><code>{escape(e.event_id)}</code></td>'
        f"<td>{escape(e.type)}</td><td>{escape(e.subject)}</td><td>{escape(e.actor)}</td>"
        f"<td>{escape(e.occurred_at)}</td><td>"
        + _status("verified" if e.verified else "unchecked" if e.verified is None else "failed")
        + f" {escape(e.detail)}</td></tr>"
        for e in pack.audit_entries
    )
    identity = "".join(
        f"<tr><th scope=\"row\">{escape(k)}</th><td><code>{escape(_value(v))}</code></td></tr>" for k, v in m.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Evidence pack: {escape(pack.version_id)}</title><style>{STYLE}</style></head>
<body><main>
<h1>Compliance evidence pack: {escape(pack.version_id)}</h1>
<p>Generated {pack.generated_at:%Y-%m-%d %H:%M} UTC by tunegate ({escape(pack.format)}). Obligations:
{_status("evidenced")} {s.evidenced}, {_status("partly")} {s.partly}, {_status("gap")} {s.gap},
{_status("not_applicable")} {s.not_applicable}. Audit-ledger entries: {s.audit_entries}, inclusion proofs verified:
{s.proofs_verified}. A gap is listed as a gap: nothing here is inferred beyond the records linked.</p>
<h2 id="model">Model version</h2>
<table><caption>Identity of the version this pack is about</caption><tbody>{identity}</tbody></table>
<h2 id="obligations">Obligations</h2>
<table><caption>EU AI Act, NIST AI RMF (with NIST AI 600-1) and ISO/IEC 42001 Annex A: status per obligation and
the evidence it rests on</caption>
<thead><tr><th scope="col">Framework</th><th scope="col">Reference</th><th scope="col">Obligation</th>
<th scope="col">Status</th><th scope="col">Evidence</th><th scope="col">Gaps or scope</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2 id="evidence">Evidence</h2>
{sections}
<h2 id="ledger">Audit-ledger entries</h2>
<p>Ledger: {escape(str(pack.ledger.get("detail", "")))}. Each entry's inclusion proof under a signed tree head is in
evidence.json; check it offline with <code>tunegate audit verify-proof</code> and the log's public key.</p>
<table><caption>Entries about the job, the version and its incidents, with their inclusion-proof check</caption>
<thead><tr><th scope="col">Sequence</th><th scope="col">Event id</th><th scope="col">Type</th>
<th scope="col">Subject</th><th scope="col">Actor</th><th scope="col">Occurred</th>
<th scope="col">Inclusion proof</th></tr></thead>
<tbody>{entries}</tbody></table>
</main></body></html>
"""
