"""`tunegate signing-keys`: the services' event-signing keys (docs/security.md)."""

from __future__ import annotations

import typer

signing_keys_app = typer.Typer(help="Event-signing keys of the services: list, rotate.", no_args_is_help=True)


@signing_keys_app.command("list")
def list_keys() -> None:
    """Every service identity with its current key id and the key ids still trusted for verification."""
    from shared.config import Settings
    from shared.roster import service_names
    from shared.security.signing import KeyDirectory

    directory = KeyDirectory(Settings().keys_dir)
    for name in service_names():
        current_path = directory.root / "signing" / f"{name}.key"
        current = directory.existing_signer(name).key_id if current_path.exists() else "-"
        trusted = ", ".join(directory.public_keys(name)) or "-"
        typer.echo(f"{name}: current {current}; trusted {trusted}")


@signing_keys_app.command("rotate")
def rotate(service: str = typer.Argument(..., help="The service whose signing key is replaced.")) -> None:
    """Give SERVICE a new signing key. Its old public key stays trusted, so everything it signed before
    still verifies; restart the service (`tunegate down && tunegate up`) to sign with the new key."""
    from shared.config import Settings
    from shared.roster import service_names
    from shared.security.signing import KeyDirectory

    if service not in service_names():
        typer.echo(f"unknown service {service!r}; known: {', '.join(service_names())}", err=True)
        raise typer.Exit(2)
    signer = KeyDirectory(Settings().keys_dir).rotate(service)
    typer.echo(f"{service}: new signing key {signer.key_id}; restart {service} to use it")
