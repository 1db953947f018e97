"""`tunegate erase --subject ID --reason R` and `tunegate erasure list|show|verify`: a data subject's erasure
(GDPR Art. 17) through the registry API, its progress step by step, and the offline check of its certificate.

`erasure show ID --certificate FILE` writes the certificate with the audit ledger's inclusion proofs attached
(of the dataset.erasure.completed event that names it, and of every step's event) when this host has the
ledger; `erasure verify FILE --public-key audit_ed25519.pub` needs only the file and the audit log's public
key (the registry's key, when at hand, checks its second signature). Exit codes: 0 verified / done, 1 failed,
2 usage error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from services.registry.entrypoints import cli_common as common
from services.registry.entrypoints.cli_common import JsonOption, TokenOption, call, console, fail
from shared.json_input import parse_json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from services.registry.erasure_schemas import ErasureView
    from shared.config import Settings

erasure_app = typer.Typer(
    help="Erasures of data subjects (GDPR Art. 17): list, show step by step, write and verify certificates.",
    no_args_is_help=True,
)
AsOption = Annotated[str | None, typer.Option("--as", help="Principal whose stored token to use.")]
ErasureArgument = Annotated[str, typer.Argument(help="Erasure id, e.g. er-019a...")]


def _erasure_id(value: str) -> str:
    from services.registry.domain.erasure import validate_erasure_id
    from services.registry.domain.errors import InvalidRequest

    try:
        return validate_erasure_id(value)
    except InvalidRequest as exc:
        raise fail(str(exc), code=2) from None


def _print(view: ErasureView) -> None:
    console.print(f"[bold]{view.id}[/bold]  {view.state}  requested by {view.requested_by} at "
                  f"{view.requested_at.isoformat()}", highlight=False)
    console.print(f"reason: {view.reason}", highlight=False)
    console.print(f"subject (keyed hash): {view.subject_key}", highlight=False)
    for dataset in view.datasets:
        console.print(f"dataset of job {dataset['job_id']} (fingerprint {dataset['fingerprint'][:16]}...): "
                      f"{len(dataset['record_hashes'])} record(s) of the subject", highlight=False)
    console.print(f"tainted versions: {', '.join(view.versions) or 'none'}", highlight=False)
    for alias, version in sorted(view.replacements.items()):
        console.print(f"alias {alias!r} now served by {version}", highlight=False)
    table = Table("step", "status", "at", "detail", "event")
    for step in view.steps:
        due = f" (due {step.due.isoformat()})" if step.due else ""
        table.add_row(step.name, step.status + due, step.at.isoformat(), step.detail, step.event_id)
    console.print(table)


def erase(
    subject: Annotated[str, typer.Option("--subject", help="The data subject's id (the manifest's subject_field).")],
    reason: Annotated[str, typer.Option("--reason", help="Why: the request's reference, the Art. 17 ground.")],
    principal: AsOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Erase a data subject (GDPR Art. 17) through lineage: retire, retrain, certify.

    Finds every dataset and model version that used the subject's records, retires those versions (or
    schedules it, per policy), submits retraining without the records; the certificate follows when the
    replacements are deployed under the same aliases."""
    from services.registry.erasure_schemas import ErasureRequest

    client = common.client_for(token, principal)
    view = call(lambda: client.request_erasure(ErasureRequest(subject=subject, reason=reason)))
    if as_json:
        typer.echo(view.model_dump_json(indent=2))
    else:
        _print(view)


@erasure_app.command("list")
def erasure_list(principal: AsOption = None, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Every erasure, newest first, with the step it waits for."""
    client = common.client_for(token, principal)
    found = call(client.list_erasures)
    if as_json:
        typer.echo(json.dumps([v.model_dump(mode="json") for v in found], indent=2))
        return
    table = Table("id", "state", "requested by", "requested at", "versions", "replacements")
    for view in found:
        table.add_row(view.id, view.state, view.requested_by, view.requested_at.isoformat(),
                      ", ".join(view.versions), ", ".join(f"{a}={v}" for a, v in sorted(view.replacements.items())))
    console.print(table)


@erasure_app.command("show")
def erasure_show(
    erasure_id: ErasureArgument,
    certificate_out: Annotated[
        Path | None, typer.Option("--certificate", help="Write the issued certificate (with audit proofs) here.")
    ] = None,
    principal: AsOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """An erasure step by step; with --certificate, write its certificate once issued."""
    client = common.client_for(token, principal)
    wanted = _erasure_id(erasure_id)
    view = call(lambda: client.get_erasure(wanted))
    if certificate_out is not None:
        document = call(lambda: client.get_erasure_certificate(wanted))
        attached = _attach_proofs(document)
        certificate_out.write_text(json.dumps(document, indent=2))
        where = f"with {attached} audit proof(s)" if attached else "without audit proofs (no audit ledger on this host)"
        console.print(f"certificate written to {certificate_out} {where}", highlight=False)
    if as_json:
        typer.echo(view.model_dump_json(indent=2))
    elif certificate_out is None:
        _print(view)


def _attach_proofs(document: dict[str, Any]) -> int:
    """The inclusion proof of each step's event under the ledger's latest signed tree head, when this host
    has the audit ledger; an event the ledger has not recorded yet is a clear error."""
    from services.audit.adapters.store import LedgerNotFound
    from services.audit.application import open_store
    from services.audit.entrypoints.cli_support import trusted_public_key_pem
    from services.audit.ledger_proofs import ProofUnavailable
    from services.registry.erasure.certificate import attach_audit_proofs
    from shared.config import Settings

    settings = Settings()
    try:
        store = open_store(settings, create=False)
        store.require_schema()
    except (LedgerNotFound, FileNotFoundError):
        return 0
    try:
        return attach_audit_proofs(document, store, trusted_public_key_pem(settings, None))
    except ProofUnavailable as exc:
        raise fail(str(exc)) from None


@erasure_app.command("verify")
def erasure_verify(
    file: Annotated[Path, typer.Argument(help="The certificate from `tunegate erasure show ID --certificate F`.")],
    log_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="The audit log's public key the certificate is checked against "
                     "(default: this host's)."),
    ] = None,
    registry_key: Annotated[
        Path | None, typer.Option("--registry-key", help="The registry's public key (PEM), to check its second "
                                  "signature too (default: this host's trusted registry key, when it has it).")
    ] = None,
    registry_only: Annotated[
        bool, typer.Option("--registry-only", help="Accept a certificate without audit proofs (written on a host "
                           "without the ledger) on the registry's signature alone.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Check a certificate offline against the audit log's key: the ledger entry of its dataset.erasure.completed
    names exactly this certificate, each step's event is in the ledger, each replacement's dataset holds none
    of the erased records (Merkle proof), every step is done; and the registry's signature when its key is
    at hand."""
    from services.audit.entrypoints.cli_support import emit, read_input, trusted_log_key
    from services.registry.erasure import certificate
    from shared.config import Settings

    settings = Settings()
    raw = read_input(file, "certificate")
    try:
        document = parse_json(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(f"{file}: not a JSON certificate ({exc})", code=2) from None
    if not isinstance(document, dict):
        raise fail(f"{file}: not a JSON certificate object", code=2)
    if registry_only and log_key is not None:
        raise fail("--registry-only and --public-key exclude each other", code=2)
    audit_key = None if registry_only else trusted_log_key(settings, log_key)[0]
    key = _registry_key(settings, registry_key, document, required=registry_only)
    problems = certificate.verify(document, key, audit_key)
    ok = not problems
    steps = len(document.get("steps") or [])
    checked = [] if audit_key is None else [f"audit anchor and {steps} step proof(s)"]
    checked += ["proof of absence"] + (["registry signature"] if key is not None else [])
    text = (f"erasure {document.get('erasure_id')}: {', '.join(checked)} verify"
            + ("" if key is not None else " (registry signature not checked: its key is not on this host)")
            if ok else "; ".join(problems))
    emit(as_json, {"ok": ok, "problems": problems, "erasure_id": document.get("erasure_id"),
                   "anchored": audit_key is not None, "registry_signature": key is not None}, text, ok)
    raise typer.Exit(0 if ok else 1)


def _registry_key(
    settings: Settings, given: Path | None, document: dict[str, Any], *, required: bool
) -> Ed25519PublicKey | None:
    from shared.security.keys import PublicKeyError, load_public_key
    from shared.security.signing import KeyDirectory

    if given is not None:
        try:
            return load_public_key(given.read_bytes())
        except (OSError, PublicKeyError) as exc:
            raise fail(f"--registry-key {given}: {exc}", code=2) from None
    key_id = str((document.get("signature") or {}).get("key_id", ""))
    known = KeyDirectory(settings.keys_dir).public_keys("registry")
    if key_id not in known:
        if not required:
            return None  # the audit key carries the certificate; the registry's signature is a second one
        raise fail(f"the registry key {key_id!r} that signed it is not in {settings.keys_dir}/trust/registry; pass "
                   "--registry-key with the registry's public key", code=2)
    return known[key_id]
