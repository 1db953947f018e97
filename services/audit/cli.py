"""`tunegate audit ...`: verify the ledger, export and check proofs, inspect the tail.

Every command only reads the ledger (Settings().database_url_for("audit")). Exit codes: 0 verified / done,
1 verification failed, 2 usage error (unknown event id, bad sizes, missing ledger, key or file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from services.audit.adapters.store import LedgerStore
    from shared.config import Settings

# Heavy modules (SQLAlchemy, rich, the ledger) are imported inside the commands, so `tunegate --help` and
# every other verb start without them.

audit_app = typer.Typer(help="The audit ledger: verify it, export and check proofs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


def _usage_error(message: str) -> NoReturn:
    from rich.console import Console

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


MAX_INPUT_BYTES = 16 * 1024 * 1024  # a proof document, key or checkpoint is far smaller


def _read_input(path: Path, what: str) -> bytes:
    """A regular file, size-limited; anything else is a usage error naming the file."""
    try:
        if not path.is_file():
            _usage_error(f"{what} {path} not found (or not a regular file)")
        if path.stat().st_size > MAX_INPUT_BYTES:
            _usage_error(f"{what} {path} is larger than {MAX_INPUT_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        _usage_error(f"{what} {path} cannot be read: {exc.strerror}")


def _parse_log_key(data: bytes, where: str) -> Ed25519PublicKey:
    """The log's public key: PEM, raw 32 bytes, hex, or its note verifier key (`name+id+base64`)."""
    from services.audit.domain.checkpoints import ED25519, NoteError, NoteVerifier, log_origin
    from shared.security.keys import PublicKeyError, load_public_key

    if len(data) != 32 and b"+" in data and not data.lstrip().startswith(b"-----BEGIN"):
        try:
            verifier = NoteVerifier.parse(data.decode("utf-8", "replace"))
        except NoteError as exc:
            _usage_error(f"{where}: {exc}")
        if verifier.signature_type != ED25519 or verifier.name != log_origin(verifier.public_key):
            _usage_error(f"{where}: {verifier.name} is not an audit log's verifier key (a witness key?)")
        return verifier.public_key
    try:
        return load_public_key(data)
    except PublicKeyError as exc:
        _usage_error(f"{where}: {exc}")


def _log_key(settings: Settings, given: Path | None) -> Ed25519PublicKey:
    from services.audit.adapters.keys import PUBLIC_KEY_FILE

    path = given or settings.home_dir / "keys" / PUBLIC_KEY_FILE
    if given is None and not path.is_file():
        _usage_error(f"public key {path} not found (pass --public-key with the log's key you trust)")
    return _parse_log_key(_read_input(path, "public key"), str(path))


def _public_key_pem(settings: Settings, given: Path | None) -> str:
    from shared.security.keys import public_key_pem

    return public_key_pem(_log_key(settings, given))


def _emit(as_json: bool, payload: dict[str, object], text: str, ok: bool = True) -> None:
    from rich.console import Console

    if as_json:
        typer.echo(json.dumps(payload, indent=2))
    else:
        Console(soft_wrap=True).print(("[green]OK[/green] " if ok else "[red]FAILED[/red] ") + text, highlight=False)


def _write_output(out: Path, data: bytes) -> None:
    try:
        out.write_bytes(data)
    except OSError as exc:
        _usage_error(f"cannot write {out}: {exc.strerror}")


PublicKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="The log's Ed25519 public key you trust: PEM, raw, hex or its verifier key"
        " (default: $TUNEGATE_HOME/keys).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
OutOption = Annotated[Path | None, typer.Option("--out", help="Write the document to this file.")]


@audit_app.command("verify")
def verify_command(
    as_json: JsonOption = False,
    public_key: PublicKeyOption = None,
    trusted_checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--trusted-checkpoint",
            help="A checkpoint held elsewhere (from `audit checkpoint`, maybe cosigned by witnesses): the ledger"
            " must hold at least its entries and extend its tree.",
        ),
    ] = None,
) -> None:
    """Recompute every entry hash, the chain, the Merkle root at each signed head and each signature; with
    --trusted-checkpoint, also prove the ledger was not cut short, rolled back or rewritten since."""
    from services.audit.application import check_against_checkpoint, verify_ledger
    from services.audit.domain.checkpoints import NoteError, log_verifier, open_checkpoint
    from shared.config import Settings

    settings = Settings()
    store = _store(settings)
    key = _log_key(settings, public_key)
    trusted = None
    if trusted_checkpoint is not None:
        try:
            trusted = open_checkpoint(_read_input(trusted_checkpoint, "checkpoint"), log_verifier(key))
        except NoteError as exc:
            problem = f"trusted checkpoint {trusted_checkpoint}: {exc}"
            _emit(as_json, {"ok": False, "detail": problem}, problem, False)
            raise typer.Exit(1) from None
    report = verify_ledger(store, key)
    payload: dict[str, object] = report.model_dump(mode="json")
    if report.ok:
        text = (
            f"{report.detail}; {report.unsigned_entries} entries not yet signed ({report.entries_per_s:,.0f} entries/s)"
        )
    else:
        text = f"first bad sequence {report.first_bad_sequence}: {report.problem}: {report.detail}"
    ok = report.ok
    if trusted is not None and report.ok:
        check = check_against_checkpoint(store, trusted, report.entries_checked)
        payload["trusted_checkpoint"] = check.model_dump(mode="json")
        ok = check.ok
        payload["ok"] = ok
        text = f"{text}; {check.detail}" if check.ok else f"trusted checkpoint: {check.detail}"
    _emit(as_json, payload, text, ok)
    raise typer.Exit(0 if ok else 1)


@audit_app.command("checkpoint")
def checkpoint_command(
    out: OutOption = None,
) -> None:
    """Export the latest signed tree head as a C2SP checkpoint (signed note): keep it elsewhere, have
    witnesses cosign it, and later `verify --trusted-checkpoint` it."""
    from services.audit.application import ProofUnavailable, latest_checkpoint
    from shared.config import Settings

    settings = Settings()
    store = _store(settings)
    try:
        note = latest_checkpoint(store, _log_key(settings, None)).render()
    except ProofUnavailable as exc:
        _usage_error(str(exc))
    if out is None:
        typer.echo(note.decode("utf-8"), nl=False)
    else:
        _write_output(out, note)
        typer.echo(f"checkpoint written to {out}", err=True)


@audit_app.command("verifier-key")
def verifier_key_command(public_key: PublicKeyOption = None) -> None:
    """Print the log's note verifier key (`<origin>+<key id>+<base64 key>`), for witnesses and auditors."""
    from services.audit.domain.checkpoints import log_verifier
    from shared.config import Settings

    typer.echo(log_verifier(_log_key(Settings(), public_key)).encode())


@audit_app.command("proof")
def proof_command(
    event_id: Annotated[str, typer.Argument(help="The event whose inclusion to prove.")],
    as_json: JsonOption = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write the proof document to this file.")] = None,
) -> None:
    """Export an inclusion proof for EVENT_ID against the latest signed tree head covering it."""
    from rich.console import Console

    from services.audit.application import ProofUnavailable, build_inclusion_proof
    from shared.config import Settings

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
    from pydantic import ValidationError

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
    from shared.config import Settings

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
    from rich.console import Console
    from rich.table import Table

    from shared.config import Settings

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
