"""`tunegate audit ...`: verify the ledger, export and check proofs, inspect the tail.

Every command only reads the ledger (Settings().database_url_for("audit")). Exit codes: 0 verified / done,
1 verification failed, 2 usage error (unknown event id, bad sizes, missing ledger, key or file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from shared.config import Settings

# The ledger store (SQLAlchemy), the signer (cryptography) and the proof code are imported inside the
# commands that use them, so that `tunegate` and `tunegate audit ... --help` start at once.
if TYPE_CHECKING:
    from services.audit.adapters.store import LedgerStore

audit_app = typer.Typer(help="The audit ledger: verify it, export and check proofs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


def _usage_error(message: str) -> NoReturn:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


def _store(settings: Settings) -> LedgerStore:
    from services.audit.adapters.store import LedgerNotFound
    from services.audit.application import open_store

    store = open_store(settings, create=False)
    try:
        store.require_schema()
    except LedgerNotFound as exc:
        _usage_error(f"{exc} (has the audit service run? TUNEGATE_HOME={settings.home_dir})")
    return store


def _public_key_pem(settings: Settings, given: Path | None) -> str:
    from services.audit.adapters.keys import PUBLIC_KEY_FILE
    from services.audit.domain.tree_heads import PublicKeyError, load_public_key, public_key_pem

    path = given or settings.home_dir / "keys" / PUBLIC_KEY_FILE
    if not path.is_file():
        _usage_error(f"public key {path} not found (pass --public-key PEM)")
    try:
        return public_key_pem(load_public_key(path.read_bytes()))
    except PublicKeyError as exc:
        _usage_error(f"{path}: {exc}")


def _emit(as_json: bool, payload: dict[str, object], text: str, ok: bool = True) -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
    else:
        Console(soft_wrap=True).print(("[green]OK[/green] " if ok else "[red]FAILED[/red] ") + text, highlight=False)


PublicKeyOption = Annotated[
    Path | None, typer.Option("--public-key", help="Ed25519 public key PEM (default: $TUNEGATE_HOME/keys).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@audit_app.command("verify")
def verify_command(as_json: JsonOption = False, public_key: PublicKeyOption = None) -> None:
    """Recompute every entry hash, the chain, the Merkle root at each signed head and each signature."""
    from services.audit.application import verify_ledger

    settings = Settings()
    store = _store(settings)
    report = verify_ledger(store, _public_key_pem(settings, public_key))
    if report.ok:
        text = (
            f"{report.detail}; {report.unsigned_entries} entries not yet signed ({report.entries_per_s:,.0f} entries/s)"
        )
    else:
        text = f"first bad sequence {report.first_bad_sequence}: {report.problem}: {report.detail}"
    _emit(as_json, report.model_dump(mode="json"), text, report.ok)
    raise typer.Exit(0 if report.ok else 1)


@audit_app.command("proof")
def proof_command(
    event_id: Annotated[str, typer.Argument(help="The event whose inclusion to prove.")],
    as_json: JsonOption = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write the proof document to this file.")] = None,
) -> None:
    """Export an inclusion proof for EVENT_ID against the latest signed tree head covering it."""
    from services.audit.application import ProofUnavailable, build_inclusion_proof

    settings = Settings()
    store = _store(settings)
    try:
        doc = build_inclusion_proof(store, event_id, _public_key_pem(settings, None))
    except ProofUnavailable as exc:
        _usage_error(str(exc))
    document = doc.model_dump_json(indent=2)
    if out is not None:
        out.write_text(document + "\n")
    if as_json:
        typer.echo(document)
    else:
        Console(soft_wrap=True).print(
            f"event {event_id} is entry {doc.leaf_index} of the signed tree of size {doc.tree_size}; "
            f"audit path of {len(doc.audit_path)} hashes" + (f"; written to {out}" if out else ""),
            highlight=False,
        )


@audit_app.command("verify-proof")
def verify_proof_command(
    file: Annotated[Path, typer.Argument(help="A proof document from `tunegate audit proof` or `consistency`.")],
    public_key: Annotated[Path | None, typer.Option("--public-key", help="The log's public key PEM you trust.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Check a proof document offline, with only the file and the public key."""
    from services.audit.domain.proofs import (
        CONSISTENCY_FORMAT,
        INCLUSION_FORMAT,
        ConsistencyProofDocument,
        InclusionProofDocument,
        ProofCheck,
        verify_consistency_document,
        verify_proof_document,
    )

    try:
        raw = json.loads(file.read_text())
    except FileNotFoundError:
        _usage_error(f"{file}: no such file")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        _usage_error(f"{file}: not a JSON proof document ({exc})")
    key: bytes | None = None
    if public_key is not None:
        if not public_key.is_file():
            _usage_error(f"public key {public_key} not found")
        key = public_key.read_bytes()
    kind = raw.get("format") if isinstance(raw, dict) else None
    try:
        if kind == INCLUSION_FORMAT:
            check = verify_proof_document(InclusionProofDocument.model_validate(raw), key)
        elif kind == CONSISTENCY_FORMAT:
            check = verify_consistency_document(ConsistencyProofDocument.model_validate(raw), key)
        else:
            _usage_error(f"{file}: format {kind!r} is not {INCLUSION_FORMAT!r} or {CONSISTENCY_FORMAT!r}")
    except ValidationError as exc:
        # A document that no longer parses (altered hex, sizes, fields) is a failed proof, not a usage error.
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        check = ProofCheck(ok=False, detail=f"malformed proof document: {where}", key_source="given")
    text = check.detail
    if check.ok and check.key_source == "embedded":
        text += " [yellow](checked against the key inside the document; pass --public-key to trust it)[/yellow]"
    _emit(as_json, check.model_dump(mode="json"), text, check.ok)
    raise typer.Exit(0 if check.ok else 1)


@audit_app.command("consistency")
def consistency_command(
    old: Annotated[int, typer.Argument(help="Older tree size.")],
    new: Annotated[int, typer.Argument(help="Newer tree size.")],
    as_json: JsonOption = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write the proof document to this file.")] = None,
) -> None:
    """Prove (and check) that the tree of size OLD is a prefix of the tree of size NEW."""
    from services.audit.application import ProofUnavailable, build_consistency_proof
    from services.audit.domain.proofs import verify_consistency_document

    settings = Settings()
    store = _store(settings)
    pem = _public_key_pem(settings, None)
    try:
        doc = build_consistency_proof(store, old, new, pem)
    except ProofUnavailable as exc:
        _usage_error(str(exc))
    check = verify_consistency_document(doc, pem)
    if out is not None:
        out.write_text(doc.model_dump_json(indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps({"proof": doc.model_dump(mode="json"), "check": check.model_dump(mode="json")}, indent=2))
    else:
        _emit(False, {}, f"{check.detail}; path of {len(doc.consistency_path)} hashes", check.ok)
    raise typer.Exit(0 if check.ok else 1)


@audit_app.command("tail")
def tail_command(
    count: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many entries.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Show the last N ledger entries."""
    store = _store(Settings())
    with store.read() as conn:
        rows = store.tail(conn, count)
    if as_json:
        typer.echo(json.dumps([row.model_dump(mode="json") for row in rows], indent=2))
        return
    table = Table(title=f"audit ledger: last {len(rows)} entries")
    for column in ("seq", "occurred_at", "type", "producer", "actor", "subject", "event_id", "entry_hash"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.sequence), row.occurred_at, row.type, row.producer, row.actor, row.subject, row.event_id,
            row.entry_hash[:16] + "…",
        )  # fmt: skip
    Console().print(table)
