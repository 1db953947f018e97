"""`tunegate report VERSION --out DIR`: a model version's compliance evidence pack, asked of the registry API
(GET /models/{version}/evidence), written as DIR/evidence.json and DIR/evidence.html. Every inclusion proof in
the pack is checked again here against the audit log key this host trusts (--public-key, else
$TUNEGATE_HOME/keys), never a key inside the pack. Exit 0 written with every proof verified, 1 when a proof
fails or the API refuses, 2 for bad arguments or no trusted key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from services.registry.entrypoints import cli_common as common
from services.registry.entrypoints.cli_common import JsonOption, TokenOption, call, console, fail
from shared.config import Settings


def _version(value: str) -> str:
    from shared.ids import validate_version_id

    try:
        return validate_version_id(value)
    except ValueError as exc:
        raise fail(str(exc), code=2) from None


def report(
    version_id: Annotated[str, typer.Argument(help="Model version id, e.g. support-triage.v2.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write evidence.json and evidence.html into.")],
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", help="The audit log's public key you trust (default: $TUNEGATE_HOME/keys).")] = None,
    principal: Annotated[str | None, typer.Option("--as", help="Principal whose stored token to use.")] = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a model version's compliance evidence pack (evidence.json, evidence.html): EU AI Act, NIST AI RMF
    and ISO/IEC 42001 obligations, each evidenced, partly evidenced or a gap.

    Each obligation links to its evidence, and the evidence to audit-ledger entries with inclusion proofs,
    checked here against the log key you trust."""
    from pydantic import ValidationError

    from services.audit.domain.proofs import InclusionProofDocument, verify_proof_document
    from services.audit.entrypoints.cli_support import trusted_log_key
    from services.registry.evidence.pack import EvidencePack
    from services.registry.evidence.render import render_html

    vid = _version(version_id)
    if out.exists() and not out.is_dir():
        raise fail(f"--out {out}: not a folder", code=2)
    key, trusted = trusted_log_key(Settings(), public_key)
    client = common.client_for(token, principal)
    raw = call(lambda: client.get_evidence(vid))
    try:
        pack = EvidencePack.model_validate(raw)
    except ValidationError as exc:
        raise fail(f"the registry answered with something that is not an evidence pack: {exc}") from None
    failed = []
    for entry in pack.audit_entries:
        if entry.proof is None:
            continue
        try:
            document = InclusionProofDocument.model_validate(entry.proof)
        except ValidationError as exc:
            entry.verified, entry.detail = False, f"malformed inclusion proof: {exc.error_count()} problem(s)"
            failed.append(entry.event_id)
            continue
        check = verify_proof_document(document, key)
        if check.ok and document.entry.event_id == entry.event_id:
            entry.verified, entry.detail = True, check.detail
        else:
            entry.verified, entry.detail = False, check.detail if not check.ok else "the proof is of another event"
            failed.append(entry.event_id)
    pack.summary.proofs_verified = sum(1 for e in pack.audit_entries if e.verified)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "evidence.json").write_text(pack.model_dump_json(indent=2) + "\n")
        (out / "evidence.html").write_text(render_html(pack))
    except OSError as exc:
        raise fail(f"cannot write to {out}: {exc.strerror}", code=2) from None
    s = pack.summary
    if as_json:
        print(json.dumps({"version_id": vid, "out": str(out), **s.model_dump(), "proofs_failed": failed}))
    else:
        console.print(f"evidence pack of {vid} written to {out}/evidence.json and evidence.html", highlight=False)
        console.print(f"obligations: {s.evidenced} evidenced, {s.partly} partly, {s.gap} gap, {s.not_applicable} not "
                      f"applicable; {s.proofs_verified} of {s.audit_entries} ledger entries proven [{trusted}]",
                      highlight=False)
    if failed:
        raise fail(f"{len(failed)} inclusion proof(s) did not verify: {', '.join(failed[:5])}")
