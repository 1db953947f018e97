"""`tunegate models aibom-proof VERSION_ID --out F` and `tunegate models verify-aibom FILE --proof F`: export the
proof that a model version's AIBOM was registered, and check an AIBOM file against such a proof offline.

aibom-proof reads this host's registry outbox (the model.registered payload, which the ledger keeps only as a
hash) and audit ledger (the inclusion proof of that event under the latest signed tree head); verify-aibom
needs neither, only the file, the proof and the log key the caller trusts. Exit codes: 0 verified / written,
1 verification failed, 2 usage error (unknown version, missing file or key, no ledger)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from services.audit.entrypoints.cli_support import JsonOption, PublicKeyOption, emit, read_input, usage_error
from shared.json_input import parse_json

MAX_VERSION_ID_CHARS = 200


def verify_aibom(
    file: Annotated[Path, typer.Argument(help="The AIBOM file (CycloneDX JSON) to check.")],
    proof: Annotated[Path, typer.Option("--proof", help="The AIBOM proof from `tunegate models aibom-proof`.")],
    public_key: PublicKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check offline that FILE is the AIBOM registered in the audit ledger, and valid CycloneDX 1.6.

    Its sha256 must be the one the proof's model.registered event names, that event must be in a tree head
    signed by the log key you trust (--public-key, else this host's), and FILE must pass the official schema."""
    from pydantic import ValidationError

    from services.audit.domain.event_proofs import EVENT_PROOF_FORMAT, EventProofDocument
    from services.audit.entrypoints.cli_support import trusted_log_key
    from services.registry.aibom.schema import SchemaUnavailable, validate_aibom
    from services.registry.aibom.verify import verify_aibom as check_aibom
    from shared.config import Settings
    from shared.validation import describe_validation_error

    settings = Settings()
    aibom = read_input(file, "AIBOM")
    try:
        raw = parse_json(read_input(proof, "AIBOM proof"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        usage_error(f"{proof}: not a JSON AIBOM proof ({exc})")
    if not isinstance(raw, dict) or raw.get("format") != EVENT_PROOF_FORMAT:
        kind = raw.get("format") if isinstance(raw, dict) else None
        usage_error(
            f"{proof}: format {kind!r} is not {EVENT_PROOF_FORMAT!r} (make one with `tunegate models aibom-proof`)"
        )
    key, trusted = trusted_log_key(settings, public_key)
    try:
        document = EventProofDocument.model_validate(raw)
    except ValidationError as exc:
        # An altered proof that no longer parses is a failed verification, not a usage error.
        problem = f"malformed AIBOM proof: {describe_validation_error(exc)}"
        emit(as_json, {"ok": False, "detail": problem, "trusted_key": trusted}, f"{problem} [{trusted}]", False)
        raise typer.Exit(1) from None
    check = check_aibom(aibom, document, key)
    try:
        parsed = parse_json(aibom)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        schema_problems = [f"$: not JSON ({exc})"]
    else:
        try:
            schema_problems = validate_aibom(parsed)
        except SchemaUnavailable as exc:
            usage_error(str(exc))
    ok = check.ok and not schema_problems
    text = check.detail
    if schema_problems:
        text += "; not a valid CycloneDX 1.6 AIBOM: " + "; ".join(schema_problems)
    payload = {**check.model_dump(mode="json"), "ok": ok, "schema_problems": schema_problems, "trusted_key": trusted}
    emit(as_json, payload, f"{text} [{trusted}]", ok)
    raise typer.Exit(0 if ok else 1)


def aibom_proof(
    version_id: Annotated[str, typer.Argument(help="The model version whose AIBOM registration to prove.")],
    out: Annotated[Path, typer.Option("--out", help="Write the AIBOM proof to this file.")],
    as_json: JsonOption = False,
) -> None:
    """Export the proof that VERSION_ID's AIBOM was registered, for `tunegate models verify-aibom`.

    The proof is the model.registered event's payload as the registry published it, with the event's inclusion
    proof under the audit ledger's latest signed tree head (an audit event proof)."""
    from pydantic import ValidationError
    from rich.console import Console

    from services.audit.domain.event_proofs import PayloadMismatch, event_proof
    from services.audit.entrypoints.cli_support import open_ledger_store, trusted_public_key_pem, write_output
    from services.audit.ledger_proofs import ProofUnavailable, build_inclusion_proof
    from services.registry.adapters.published import OutboxMissing, published_events
    from services.registry.aibom.verify import MODEL_REGISTERED, RegisteredAIBOM
    from shared.config import Settings
    from shared.storage.db import Database
    from shared.validation import describe_validation_error

    if not version_id.strip() or len(version_id) > MAX_VERSION_ID_CHARS:
        usage_error(f"VERSION_ID must be 1 to {MAX_VERSION_ID_CHARS} characters")
    settings = Settings()
    store = open_ledger_store(settings)
    registry_db = Database(settings.database_url_for("registry"))
    try:
        events = published_events(registry_db, MODEL_REGISTERED, version_id=version_id)
    except OutboxMissing as exc:
        usage_error(str(exc))
    finally:
        registry_db.dispose()
    if not events:
        usage_error(
            f"the registry on this host published no {MODEL_REGISTERED} event for model version {version_id!r}"
            f" (TUNEGATE_HOME={settings.home_dir})"
        )
    # A version is registered once; should the registry ever re-announce it, the latest announcement stands.
    event = events[-1]
    try:
        aibom = RegisteredAIBOM.model_validate(event.payload).aibom
    except ValidationError as exc:
        usage_error(
            f"{MODEL_REGISTERED} event {event.event_id} of model version {version_id} names no AIBOM:"
            f" {describe_validation_error(exc, prefix='payload.')}"
        )
    try:
        inclusion = build_inclusion_proof(store, event.event_id, trusted_public_key_pem(settings, None))
        document = event_proof(event.payload, inclusion)
    except ProofUnavailable as exc:
        usage_error(str(exc))
    except PayloadMismatch as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/red] the registry's copy of event {event.event_id} is not what the ledger recorded: {exc}",
            highlight=False,
        )
        raise typer.Exit(1) from None
    text = document.model_dump_json(indent=2)
    write_output(out, (text + "\n").encode("utf-8"))
    if as_json:
        typer.echo(text)
        return
    Console(soft_wrap=True).print(
        f"AIBOM {aibom.uri} (sha256 {aibom.sha256}) of model version {version_id}: event {event.event_id} is entry"
        f" {inclusion.leaf_index} of the signed tree of size {inclusion.tree_size}; proof written to {out}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Mount both verbs in the `tunegate models` group."""
    app.command("verify-aibom")(verify_aibom)
    app.command("aibom-proof")(aibom_proof)
