"""What the `tunegate audit` verbs share: usage errors, key and file reading, output, common options."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from services.audit.adapters.store import LedgerStore
    from services.audit.domain.checkpoints import NoteVerifier
    from shared.config import Settings


def usage_error(message: str) -> NoReturn:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


def open_ledger_store(settings: Settings) -> LedgerStore:
    from services.audit.adapters.store import LedgerNotFound
    from services.audit.application import open_store

    store = open_store(settings, create=False)
    try:
        store.require_schema()
    except LedgerNotFound as exc:
        usage_error(f"{exc} (has the audit service run? TUNEGATE_HOME={settings.home_dir})")
    return store


def damaged_ledger_error(problem: str, detail: str) -> NoReturn:
    """The ledger could not be read or is not what the ledger writes: exit 1, like a failed verification (it is
    one), never 2: nothing the user typed is wrong."""
    from rich.console import Console

    from services.audit.domain.verification import Problem

    # A damaged row may not be the only one: verify reads them all. An unreadable database has nothing to add.
    hint = " (`tunegate audit verify` checks the whole ledger)" if problem == Problem.MALFORMED_ROW else ""
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {detail}{hint}", highlight=False)
    raise typer.Exit(1)


@contextmanager
def ledger_errors(settings: Settings, fail: Callable[[str, str], NoReturn] = damaged_ledger_error) -> Iterator[None]:
    """Around every read of the ledger: a damaged row (LedgerDamaged) or a database that cannot be read (not
    SQLite, a dropped table, a directory for a file) becomes fail(problem code, one line naming the ledger and
    what is wrong) instead of a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from services.audit.adapters.store import LedgerDamaged
    from services.audit.domain.verification import Problem

    url = settings.database_url_for("audit")
    try:
        where = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        where = "the configured audit database URL"
    try:
        yield
    except LedgerDamaged as exc:
        fail(Problem.MALFORMED_ROW, f"the audit ledger at {where} is damaged: {exc}")
    except SQLAlchemyError as exc:
        # The driver's own message ("file is not a database", "no such table: audit_nodes"), not SQLAlchemy's
        # rendering with the SQL statement and a link.
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        fail(Problem.LEDGER_UNREADABLE, f"cannot read the audit ledger at {where}: {reason}")


MAX_INPUT_BYTES = 16 * 1024 * 1024  # a proof document, key or checkpoint is far smaller


def read_input(path: Path, what: str) -> bytes:
    """A regular file, size-limited; anything else is a usage error naming the file."""
    try:
        if not path.is_file():
            usage_error(f"{what} {path} not found (or not a regular file)")
        if path.stat().st_size > MAX_INPUT_BYTES:
            usage_error(f"{what} {path} is larger than {MAX_INPUT_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        usage_error(f"{what} {path} cannot be read: {exc.strerror}")


def parse_log_key(data: bytes, where: str) -> Ed25519PublicKey:
    """The log's public key: PEM, raw 32 bytes, hex, or its note verifier key (`name+id+base64`)."""
    from services.audit.domain.checkpoints import ED25519, NoteError, NoteVerifier, log_origin
    from shared.security.keys import PublicKeyError, load_public_key

    if len(data) != 32 and b"+" in data and not data.lstrip().startswith(b"-----BEGIN"):
        try:
            verifier = NoteVerifier.parse(data.decode("utf-8", "replace"))
        except NoteError as exc:
            usage_error(f"{where}: {exc}")
        if verifier.signature_type != ED25519 or verifier.name != log_origin(verifier.public_key):
            usage_error(f"{where}: {verifier.name} is not an audit log's verifier key (a witness key?)")
        return verifier.public_key
    try:
        return load_public_key(data)
    except PublicKeyError as exc:
        usage_error(f"{where}: {exc}")


def _names_a_file(value: str) -> bool:
    """Whether `value` is the path of a regular file; a string no path can be (too long, a NUL) is not one, so
    an inline key is parsed as a key instead of crashing in stat()."""
    try:
        return Path(value).is_file()
    except (OSError, ValueError):
        return False


def verifier_key_text(value: str, what: str) -> str:
    """A verifier key given inline, or the path of a file holding one."""
    if _names_a_file(value) or "+" not in value:
        return read_input(Path(value), what).decode("utf-8", "replace").strip()
    return value


def log_verifier_key_text(value: str) -> str:
    """The log's verifier key given inline, or a file holding it or the log's public key in any form."""
    from services.audit.domain.checkpoints import log_verifier

    if _names_a_file(value) or "+" not in value:
        path = Path(value)
        return log_verifier(parse_log_key(read_input(path, "log key"), str(path))).encode()
    return value


def witness_key(value: str) -> NoteVerifier:
    from services.audit.domain.checkpoints import COSIGNATURE_V1, NoteError, NoteVerifier

    try:
        verifier = NoteVerifier.parse(verifier_key_text(value, "witness key"))
    except NoteError as exc:
        usage_error(f"--witness-key: {exc}")
    if verifier.signature_type != COSIGNATURE_V1:
        usage_error(f"--witness-key {verifier.name}: not a witness cosignature key (type 0x04)")
    return verifier


def log_key(settings: Settings, given: Path | None) -> Ed25519PublicKey:
    from services.audit.adapters.keys import local_public_key_path

    path = given or local_public_key_path(settings)
    if given is None and not path.is_file():
        usage_error(f"public key {path} not found (pass --public-key with the log's key you trust)")
    return parse_log_key(read_input(path, "public key"), str(path))


def trusted_log_key(settings: Settings, given: Path | None) -> tuple[Ed25519PublicKey, str]:
    """The log key a proof is checked against, and where it came from: --public-key when given, else this
    host's audit log key; never the key inside a proof document."""
    from services.audit.adapters.keys import local_public_key_path

    local_key = local_public_key_path(settings)
    if given is not None:
        return log_key(settings, given), f"--public-key {given}"
    if local_key.is_file():
        return log_key(settings, None), f"this host's audit log key {local_key}"
    usage_error(
        "no trusted key to check the proof against: pass --public-key with the log's public key or verifier"
        f" key (the key inside a proof document is never trusted; {local_key} does not exist)"
    )


def trusted_public_key_pem(settings: Settings, given: Path | None) -> str:
    from shared.security.keys import public_key_pem

    return public_key_pem(log_key(settings, given))


def emit(as_json: bool, payload: dict[str, object], text: str, ok: bool = True) -> None:
    from rich.console import Console

    if as_json:
        typer.echo(json.dumps(payload, indent=2))
    else:
        Console(soft_wrap=True).print(("[green]OK[/green] " if ok else "[red]FAILED[/red] ") + text, highlight=False)


def write_output(out: Path, data: bytes) -> None:
    try:
        out.write_bytes(data)
    except OSError as exc:
        usage_error(f"cannot write {out}: {exc.strerror or exc}")
    except ValueError as exc:  # a path with a NUL byte
        usage_error(f"cannot write {out!r}: {exc}")


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

