"""`tunegate audit witness ...`: a witness with its own key, meant for another host or trust domain."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from services.audit.domain.proofs import ConsistencyProofDocument
    from services.audit.witness import Witness

# Heavy modules (SQLAlchemy, rich, the ledger) are imported inside the commands, so `tunegate --help` and
# every other verb start without them.

from services.audit.entrypoints.cli_support import (
    OutOption,
    ledger_errors,
    log_verifier_key_text,
    open_ledger_store,
    read_input,
    usage_error,
    write_output,
)

witness_app = typer.Typer(
    help="A witness with its own key, for another host: cosigns the log's checkpoints only while each extends"
    " the last it cosigned.",
    no_args_is_help=True,
)


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
        witness = Witness.initialise(WitnessState(state_dir), name, log_verifier_key_text(log_key))
        typer.echo(witness.verifier().encode())
    except (NoteError, WitnessStateError, PrivateKeyError) as exc:
        usage_error(str(exc))


@witness_app.command("verifier-key")
def witness_verifier_key_command(state_dir: StateDirOption) -> None:
    """Print the witness's verifier key (`<name>+<key id>+<base64(0x04 || key)>`)."""
    from services.audit.adapters.witness_state import WitnessStateError
    from shared.security.keys import PrivateKeyError

    try:
        typer.echo(_witness(state_dir).verifier().encode())
    except (WitnessStateError, PrivateKeyError) as exc:
        usage_error(str(exc))


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
        usage_error(str(exc))
    document: ConsistencyProofDocument | None = None
    if checkpoint is not None:
        note = read_input(checkpoint, "checkpoint")
        if proof is not None:
            try:
                document = ConsistencyProofDocument.model_validate_json(read_input(proof, "proof"))
            except ValidationError as exc:
                usage_error(f"{proof}: not a consistency proof document ({exc.error_count()} errors)")
    else:
        note, document = _fetch_from_ledger(log.public_key, last.tree_size if last else None)
    try:
        cosigned = witness.cosign(note, document)
    except (NoteError, WitnessRefusal) as exc:
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(f"[red]refused:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except (WitnessStateError, PrivateKeyError) as exc:
        usage_error(str(exc))
    rendered = cosigned.note.render()
    if out is None:
        typer.echo(rendered.decode("utf-8"), nl=False)
    else:
        write_output(out, rendered)
    since = "first checkpoint" if cosigned.previous_size is None else f"extends size {cosigned.previous_size}"
    typer.echo(f"cosigned {cosigned.checkpoint.origin} size {cosigned.checkpoint.tree_size} ({since})", err=True)


def _fetch_from_ledger(
    log_key: Ed25519PublicKey, last_size: int | None
) -> tuple[bytes, ConsistencyProofDocument | None]:
    """The local ledger's latest checkpoint, and the consistency proof from the witness's last size."""
    from services.audit.domain.checkpoints import Checkpoint
    from services.audit.ledger_proofs import ProofUnavailable, build_consistency_proof, latest_checkpoint
    from shared.config import Settings
    from shared.security.keys import public_key_pem

    settings = Settings()
    # A damaged ledger (or a head that does not verify) is refused with one line and exit 1, never cosigned.
    with ledger_errors(settings):
        store = open_ledger_store(settings)
        try:
            note = latest_checkpoint(store, log_key)
            size = Checkpoint.parse(note.text).tree_size
            document = None
            if last_size is not None and last_size < size:
                document = build_consistency_proof(store, last_size, size, public_key_pem(log_key))
        except ProofUnavailable as exc:
            usage_error(str(exc))
    return note.render(), document
