"""`tunegate audit ...`: verify the ledger, export checkpoints and proofs and check them, inspect the tail, and run
a witness.

Every command only reads the ledger (Settings().database_url_for("audit")); `audit witness ...` keeps its own
state in the directory it is given. Exit codes: 0 verified / done, 1 verification failed or cosigning refused,
2 usage error (unknown event id, bad sizes, missing ledger, key or file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from services.audit.adapters.store import LedgerStore
    from services.audit.domain.checkpoints import NoteVerifier
    from services.audit.domain.proofs import ConsistencyProofDocument
    from services.audit.witness import Witness
    from shared.config import Settings

# Heavy modules (SQLAlchemy, rich, the ledger) are imported inside the commands, so `tunegate --help` and
# every other verb start without them.

audit_app = typer.Typer(help="The audit ledger: verify it, export and check proofs.", no_args_is_help=True)


witness_app = typer.Typer(
    help="A witness with its own key, for another host: cosigns the log's checkpoints only while each extends"
    " the last it cosigned.",
    no_args_is_help=True,
)
audit_app.add_typer(witness_app, name="witness")


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


def _verifier_key_text(value: str, what: str) -> str:
    """A verifier key given inline, or the path of a file holding one."""
    if Path(value).is_file() or "+" not in value:
        return _read_input(Path(value), what).decode("utf-8", "replace").strip()
    return value


def _log_verifier_key_text(value: str) -> str:
    """The log's verifier key given inline, or a file holding it or the log's public key in any form."""
    from services.audit.domain.checkpoints import log_verifier

    if Path(value).is_file() or "+" not in value:
        path = Path(value)
        return log_verifier(_parse_log_key(_read_input(path, "log key"), str(path))).encode()
    return value


def _witness_key(value: str) -> NoteVerifier:
    from services.audit.domain.checkpoints import COSIGNATURE_V1, NoteError, NoteVerifier

    try:
        verifier = NoteVerifier.parse(_verifier_key_text(value, "witness key"))
    except NoteError as exc:
        _usage_error(f"--witness-key: {exc}")
    if verifier.signature_type != COSIGNATURE_V1:
        _usage_error(f"--witness-key {verifier.name}: not a witness cosignature key (type 0x04)")
    return verifier


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
    from services.audit.application import check_against_checkpoint, verify_ledger
    from services.audit.domain.checkpoints import NoteError, log_verifier, open_checkpoint
    from shared.config import Settings

    settings = Settings()
    store = _store(settings)
    key = _log_key(settings, public_key)
    witnesses = [_witness_key(value) for value in witness_keys or []]
    if required_cosignatures and trusted_checkpoint is None:
        _usage_error("--require-cosignatures needs --trusted-checkpoint (the cosigned checkpoint)")
    if required_cosignatures > len(witnesses):
        _usage_error(f"--require-cosignatures {required_cosignatures} but only {len(witnesses)} --witness-key given")
    trusted = None
    if trusted_checkpoint is not None:
        try:
            trusted = open_checkpoint(
                _read_input(trusted_checkpoint, "checkpoint"), log_verifier(key), witnesses, required_cosignatures
            )
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

    from services.audit.adapters.keys import PUBLIC_KEY_FILE
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
        raw = json.loads(_read_input(file, "proof document"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        _usage_error(f"{file}: not a JSON proof document ({exc})")
    local_key = settings.home_dir / "keys" / PUBLIC_KEY_FILE
    if public_key is not None:
        key, trusted = _log_key(settings, public_key), f"--public-key {public_key}"
    elif local_key.is_file():
        key, trusted = _log_key(settings, None), f"this host's audit log key {local_key}"
    else:
        _usage_error(
            "no trusted key to check the proof against: pass --public-key with the log's public key or verifier"
            f" key (the key inside a proof document is never trusted; {local_key} does not exist)"
        )
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
        from shared.validation import describe_validation_error

        check = ProofCheck(ok=False, detail=f"malformed proof document: {describe_validation_error(exc)}")
    _emit(as_json, {**check.model_dump(mode="json"), "trusted_key": trusted}, f"{check.detail} [{trusted}]", check.ok)
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


# ---------------------------------------------------------------------------------------------- witness

StateDirOption = Annotated[
    Path, typer.Option("--state-dir", help="The witness's own directory: its key (0600) and last cosigned checkpoint.")
]


def _witness(state_dir: Path) -> Witness:
    from services.audit.adapters.witness_state import WitnessState
    from services.audit.witness import Witness

    return Witness(WitnessState(state_dir))


@witness_app.command("init")
def witness_init_command(
    state_dir: StateDirOption,
    name: Annotated[str, typer.Option("--name", help="The witness's key name, e.g. witness.example.com/w1.")],
    log_key: Annotated[
        str,
        typer.Option(
            "--log-key",
            help="The log's verifier key (`audit verifier-key`), or a file with it or with the log's public key.",
        ),
    ],
) -> None:
    """Create the witness's key and configuration; prints its verifier key for `audit verify --witness-key`."""
    from services.audit.adapters.witness_state import WitnessState, WitnessStateError
    from services.audit.domain.checkpoints import NoteError
    from services.audit.witness import Witness
    from shared.security.keys import PrivateKeyError

    try:
        witness = Witness.initialise(WitnessState(state_dir), name, _log_verifier_key_text(log_key))
        typer.echo(witness.verifier().encode())
    except (NoteError, WitnessStateError, PrivateKeyError) as exc:
        _usage_error(str(exc))


@witness_app.command("verifier-key")
def witness_verifier_key_command(state_dir: StateDirOption) -> None:
    """Print the witness's verifier key (`<name>+<key id>+<base64(0x04 || key)>`)."""
    from services.audit.adapters.witness_state import WitnessStateError
    from shared.security.keys import PrivateKeyError

    try:
        typer.echo(_witness(state_dir).verifier().encode())
    except (WitnessStateError, PrivateKeyError) as exc:
        _usage_error(str(exc))


@witness_app.command("cosign")
def witness_cosign_command(
    state_dir: StateDirOption,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="The log's checkpoint (default: fetch the latest from the local ledger)."),
    ] = None,
    proof: Annotated[
        Path | None,
        typer.Option(
            "--proof",
            help="Consistency proof document from the last cosigned size to the checkpoint's"
            " (`audit consistency OLD NEW --out`); built from the local ledger when the checkpoint is fetched.",
        ),
    ] = None,
    out: OutOption = None,
) -> None:
    """Cosign a checkpoint if it extends the last one this witness cosigned; refuse a rollback or a fork.
    Prints (or writes) the checkpoint with the cosignature added; other signatures are kept."""
    from pydantic import ValidationError

    from services.audit.adapters.witness_state import WitnessStateError
    from services.audit.domain.checkpoints import NoteError
    from services.audit.domain.proofs import ConsistencyProofDocument
    from services.audit.domain.witness import WitnessRefusal
    from shared.security.keys import PrivateKeyError

    witness = _witness(state_dir)
    try:
        log = witness.log()
        last = witness.last_cosigned()
    except (WitnessStateError, NoteError) as exc:
        _usage_error(str(exc))
    document: ConsistencyProofDocument | None = None
    if checkpoint is not None:
        note = _read_input(checkpoint, "checkpoint")
        if proof is not None:
            try:
                document = ConsistencyProofDocument.model_validate_json(_read_input(proof, "proof"))
            except ValidationError as exc:
                _usage_error(f"{proof}: not a consistency proof document ({exc.error_count()} errors)")
    else:
        note, document = _fetch_from_ledger(log.public_key, last.tree_size if last else None)
    try:
        cosigned = witness.cosign(note, document)
    except (NoteError, WitnessRefusal) as exc:
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(f"[red]refused:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except (WitnessStateError, PrivateKeyError) as exc:
        _usage_error(str(exc))
    rendered = cosigned.note.render()
    if out is None:
        typer.echo(rendered.decode("utf-8"), nl=False)
    else:
        _write_output(out, rendered)
    since = "first checkpoint" if cosigned.previous_size is None else f"extends size {cosigned.previous_size}"
    typer.echo(f"cosigned {cosigned.checkpoint.origin} size {cosigned.checkpoint.tree_size} ({since})", err=True)


def _fetch_from_ledger(
    log_key: Ed25519PublicKey, last_size: int | None
) -> tuple[bytes, ConsistencyProofDocument | None]:
    """The local ledger's latest checkpoint, and the consistency proof from the witness's last size."""
    from services.audit.application import ProofUnavailable, build_consistency_proof, latest_checkpoint
    from services.audit.domain.checkpoints import Checkpoint
    from shared.config import Settings
    from shared.security.keys import public_key_pem

    store = _store(Settings())
    try:
        note = latest_checkpoint(store, log_key)
        size = Checkpoint.parse(note.text).tree_size
        document = None
        if last_size is not None and last_size < size:
            document = build_consistency_proof(store, last_size, size, public_key_pem(log_key))
    except ProofUnavailable as exc:
        _usage_error(str(exc))
    return note.render(), document
