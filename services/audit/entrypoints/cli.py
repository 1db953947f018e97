"""`tunegate audit ...`: verify the ledger, export checkpoints and proofs and check them, inspect the tail, and run
a witness.

Every command only reads the ledger (Settings().database_url_for("audit")); `audit witness ...` keeps its own
state in the directory it is given. Exit codes: 0 verified / done, 1 verification failed, cosigning refused, or
the ledger is damaged or unreadable (a malformed row, a dropped table, a file that is not a database: `verify`
reports it as a failed verification, every other verb as one error line), 2 usage error (unknown event id, bad
sizes, an unsigned size for `consistency`, missing ledger, key or file, an unwritable --out)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from services.audit.entrypoints.cli_support import (
    JsonOption,
    OutOption,
    PublicKeyOption,
    emit,
    ledger_errors,
    log_key,
    open_ledger_store,
    read_input,
    trusted_log_key,
    trusted_public_key_pem,
    usage_error,
    witness_key,
    write_output,
)
from services.audit.entrypoints.witness_cli import witness_app
from shared.json_input import parse_json

if TYPE_CHECKING:
    from shared.config import Settings

# Heavy modules (SQLAlchemy, rich, the ledger) are imported inside the commands, so `tunegate --help` and
# every other verb start without them.
audit_app = typer.Typer(help="The audit ledger: verify it, export and check proofs.", no_args_is_help=True)
audit_app.add_typer(witness_app, name="witness")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


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
    witness_keys: Annotated[
        list[str] | None,
        typer.Option(
            "--witness-key",
            help="A witness's verifier key (`name+id+base64`, or a file holding it) whose cosignature counts;"
            " repeat for each witness.",
        ),
    ] = None,
    required_cosignatures: Annotated[
        int,
        typer.Option(
            "--require-cosignatures", min=0, help="How many of the --witness-key witnesses must have cosigned."
        ),
    ] = 0,
) -> None:
    """Recompute every entry hash, the chain, the Merkle root at each signed head and each signature; with
    --trusted-checkpoint, also prove the ledger was not cut short, rolled back or rewritten since (and, with
    --require-cosignatures K, that K of the given witnesses cosigned that checkpoint)."""
    from services.audit.domain.verification import VerifyReport
    from shared.config import Settings

    def failed(problem: str, detail: str) -> NoReturn:
        # Verifying is how tampering is found: a ledger that cannot be read is a failed verification (exit 1).
        report = VerifyReport(
            ok=False, entries_checked=0, tree_heads_checked=0, signed_size=0, unsigned_entries=0, problem=problem,
            detail=detail,
        )  # fmt: skip
        emit(as_json, report.model_dump(mode="json"), f"{problem}: {detail}", False)
        raise typer.Exit(1)

    settings = Settings()
    with ledger_errors(settings, failed):
        _verify(settings, as_json, public_key, trusted_checkpoint, witness_keys, required_cosignatures)


def _verify(
    settings: Settings,
    as_json: bool,
    public_key: Path | None,
    trusted_checkpoint: Path | None,
    witness_keys: list[str] | None,
    required_cosignatures: int,
) -> NoReturn:
    from services.audit.domain.checkpoints import NoteError, log_verifier, open_checkpoint
    from services.audit.ledger_proofs import check_against_checkpoint, verify_ledger

    store = open_ledger_store(settings)
    key = log_key(settings, public_key)
    witnesses = [witness_key(value) for value in witness_keys or []]
    if required_cosignatures and trusted_checkpoint is None:
        usage_error("--require-cosignatures needs --trusted-checkpoint (the cosigned checkpoint)")
    if required_cosignatures > len(witnesses):
        usage_error(f"--require-cosignatures {required_cosignatures} but only {len(witnesses)} --witness-key given")
    trusted = None
    if trusted_checkpoint is not None:
        try:
            trusted = open_checkpoint(
                read_input(trusted_checkpoint, "checkpoint"), log_verifier(key), witnesses, required_cosignatures
            )
        except NoteError as exc:
            problem = f"trusted checkpoint {trusted_checkpoint}: {exc}"
            emit(as_json, {"ok": False, "detail": problem}, problem, False)
            raise typer.Exit(1) from None
    report = verify_ledger(store, key)
    payload: dict[str, object] = report.model_dump(mode="json")
    if report.ok:
        text = (
            f"{report.detail}; {report.unsigned_entries} entries not yet signed ({report.entries_per_s:,.0f} entries/s)"
        )
    elif report.first_bad_sequence is None:  # a row that does not parse, not an entry of the chain
        text = f"{report.problem}: {report.detail}"
    else:
        text = f"first bad sequence {report.first_bad_sequence}: {report.problem}: {report.detail}"
    ok = report.ok
    if trusted is not None and report.ok:
        check = check_against_checkpoint(store, trusted, report.entries_checked)
        payload["trusted_checkpoint"] = check.model_dump(mode="json")
        ok = check.ok
        payload["ok"] = ok
        text = f"{text}; {check.detail}" if check.ok else f"trusted checkpoint: {check.detail}"
    emit(as_json, payload, text, ok)
    raise typer.Exit(0 if ok else 1)


@audit_app.command("checkpoint")
def checkpoint_command(
    out: OutOption = None,
) -> None:
    """Export the latest signed tree head as a C2SP checkpoint (signed note): keep it elsewhere, have
    witnesses cosign it, and later `verify --trusted-checkpoint` it."""
    from services.audit.ledger_proofs import ProofUnavailable, latest_checkpoint
    from shared.config import Settings

    settings = Settings()
    with ledger_errors(settings):
        store = open_ledger_store(settings)
        try:
            # latest_checkpoint refuses (LedgerDamaged, exit 1) a head whose signature or root does not verify.
            note = latest_checkpoint(store, log_key(settings, None)).render()
        except ProofUnavailable as exc:
            usage_error(str(exc))
    if out is None:
        typer.echo(note.decode("utf-8"), nl=False)
    else:
        write_output(out, note)
        typer.echo(f"checkpoint written to {out}", err=True)


@audit_app.command("verifier-key")
def verifier_key_command(public_key: PublicKeyOption = None) -> None:
    """Print the log's note verifier key (`<origin>+<key id>+<base64 key>`), for witnesses and auditors."""
    from services.audit.domain.checkpoints import log_verifier
    from shared.config import Settings

    typer.echo(log_verifier(log_key(Settings(), public_key)).encode())


@audit_app.command("proof")
def proof_command(
    event_id: Annotated[str, typer.Argument(help="The event whose inclusion to prove.")],
    as_json: JsonOption = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write the proof document to this file.")] = None,
) -> None:
    """Export an inclusion proof for EVENT_ID against the latest signed tree head covering it."""
    from rich.console import Console

    from services.audit.domain.proofs import verify_proof_document
    from services.audit.ledger_proofs import ProofUnavailable, build_inclusion_proof
    from shared.config import Settings

    settings = Settings()
    with ledger_errors(settings):
        store = open_ledger_store(settings)
        pem = trusted_public_key_pem(settings, None)
        try:
            doc = build_inclusion_proof(store, event_id, pem)
        except ProofUnavailable as exc:
            usage_error(str(exc))
    # Checked before it is handed out, as `consistency` does: a proof built from altered rows (a leaf, a node,
    # a head) would fail for whoever receives it, so it fails here, where the ledger can be looked at.
    check = verify_proof_document(doc, pem)
    if not check.ok:
        emit(False, {}, f"the ledger gives a proof that does not verify: {check.detail}", False)
        raise typer.Exit(1)
    document = doc.model_dump_json(indent=2)
    if out is not None:
        write_output(out, (document + "\n").encode())
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
    file: Annotated[
        Path,
        typer.Argument(
            help="A proof document from `tunegate audit proof` or `consistency`, or an event proof (an AIBOM proof)."
        ),
    ],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The log's key you trust: PEM, raw, hex or verifier key (default: this host's audit log key).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check a proof document offline, with only the file and the log's key you trust (never the one inside the
    document)."""
    from pydantic import ValidationError

    from services.audit.domain.event_proofs import EVENT_PROOF_FORMAT, EventProofDocument, verify_event_proof
    from services.audit.domain.proofs import (
        CONSISTENCY_FORMAT,
        INCLUSION_FORMAT,
        ConsistencyProofDocument,
        InclusionProofDocument,
        ProofCheck,
        verify_consistency_document,
        verify_proof_document,
    )
    from shared.config import Settings

    settings = Settings()
    try:
        raw = parse_json(read_input(file, "proof document"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        usage_error(f"{file}: not a JSON proof document ({exc})")
    key, trusted = trusted_log_key(settings, public_key)
    kind = raw.get("format") if isinstance(raw, dict) else None
    try:
        if kind == INCLUSION_FORMAT:
            check = verify_proof_document(InclusionProofDocument.model_validate(raw), key)
        elif kind == CONSISTENCY_FORMAT:
            check = verify_consistency_document(ConsistencyProofDocument.model_validate(raw), key)
        elif kind == EVENT_PROOF_FORMAT:
            check = verify_event_proof(EventProofDocument.model_validate(raw), key)
        else:
            known = ", ".join(repr(f) for f in (INCLUSION_FORMAT, CONSISTENCY_FORMAT, EVENT_PROOF_FORMAT))
            usage_error(f"{file}: format {kind!r} is not one of {known}")
    except ValidationError as exc:
        # A document that no longer parses (altered hex, sizes, fields) is a failed proof, not a usage error.
        from shared.validation import describe_validation_error

        check = ProofCheck(
            ok=False, detail=f"malformed proof document: {describe_validation_error(exc, show_input=True)}"
        )
    emit(as_json, {**check.model_dump(mode="json"), "trusted_key": trusted}, f"{check.detail} [{trusted}]", check.ok)
    raise typer.Exit(0 if check.ok else 1)


@audit_app.command("consistency")
def consistency_command(
    old: Annotated[int, typer.Argument(help="Older tree size.")],
    new: Annotated[int, typer.Argument(help="Newer tree size.")],
    as_json: JsonOption = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write the proof document to this file.")] = None,
) -> None:
    """Prove (and check) that the tree of size OLD is a prefix of the tree of size NEW."""
    from services.audit.domain.proofs import verify_consistency_document
    from services.audit.ledger_proofs import ProofUnavailable, build_consistency_proof
    from shared.config import Settings

    settings = Settings()
    with ledger_errors(settings):
        store = open_ledger_store(settings)
        pem = trusted_public_key_pem(settings, None)
        try:
            doc = build_consistency_proof(store, old, new, pem)
        except ProofUnavailable as exc:
            usage_error(str(exc))
    check = verify_consistency_document(doc, pem)
    if out is not None:
        write_output(out, (doc.model_dump_json(indent=2) + "\n").encode())
    if as_json:
        typer.echo(json.dumps({"proof": doc.model_dump(mode="json"), "check": check.model_dump(mode="json")}, indent=2))
    else:
        emit(False, {}, f"{check.detail}; path of {len(doc.consistency_path)} hashes", check.ok)
    raise typer.Exit(0 if check.ok else 1)


# A bound SQLite and PostgreSQL take as a LIMIT (a 64-bit integer overflows in the driver), and more than a
# terminal table or a JSON dump is useful for; the whole ledger is `verify`'s or an export's job.
MAX_TAIL = 100_000


@audit_app.command("tail")
def tail_command(
    count: Annotated[
        int, typer.Option("-n", "--lines", min=1, max=MAX_TAIL, help=f"How many entries (at most {MAX_TAIL:,}).")
    ] = 20,
    as_json: JsonOption = False,
) -> None:
    """Show the last N ledger entries."""
    from rich.console import Console
    from rich.table import Table

    from shared.config import Settings

    settings = Settings()
    with ledger_errors(settings):
        store = open_ledger_store(settings)
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


# ---------------------------------------------------------------------------------------------- witness
