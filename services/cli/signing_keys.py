"""`tunegate signing-keys`: the services' event-signing keys (docs/security.md).

Rotating keeps the old public key trusted, because events signed before the rotation are still in outboxes and
streams; retiring takes a key out of trust for good, which is what locks out a key that may have been stolen."""

from __future__ import annotations

import typer

signing_keys_app = typer.Typer(
    # The first paragraph is also the line of `tunegate --help` (services/cli/main.py VERBS): keep them equal.
    help="Event-signing keys of the services: list, rotate (the old key stays trusted for events in flight), retire "
    "(an old key, to lock it out).\n\n"
    "To lock out a key you suspect: rotate, restart the service, wait until `tunegate status` shows no lag or "
    "pending entries, then retire the old key id.",
    no_args_is_help=True,
)


def _known_service(service: str) -> None:
    from shared.roster import service_names

    if service not in service_names():
        typer.echo(f"unknown service {service!r}; known: {', '.join(service_names())}", err=True)
        raise typer.Exit(2)


@signing_keys_app.command("list")
def list_keys() -> None:
    """Each service's current key id, its trusted key ids and its retired ones.

    Trusted: the current key and rotated ones not yet retired, which verify. Retired: refused, kept for audit."""
    from shared.config import Settings
    from shared.roster import service_names
    from shared.security.signing import KeyDirectory

    directory = KeyDirectory(Settings().keys_dir)
    for name in service_names():
        current = directory.current_key_id(name) or "-"
        trusted = ", ".join(directory.public_keys(name)) or "-"
        retired = ", ".join(directory.retired_keys(name)) or "-"
        typer.echo(f"{name}: current {current}; trusted {trusted}; retired {retired}")


@signing_keys_app.command("rotate")
def rotate(service: str = typer.Argument(..., help="The service whose signing key is replaced.")) -> None:
    """Give SERVICE a new signing key; the old one stays trusted for events in flight (retire it afterwards).

    Events it signed before (still in outboxes and streams) keep verifying. Restart the service
    (`tunegate down && tunegate up`) to sign with the new key.

    Rotating alone does not lock out a stolen key: once the service runs on the new key and `tunegate status`
    shows no lag or pending entries, run `tunegate signing-keys retire SERVICE OLD_KEY_ID`."""
    from shared.config import Settings
    from shared.security.signing import KeyDirectory

    _known_service(service)
    directory = KeyDirectory(Settings().keys_dir)
    old = directory.current_key_id(service)
    signer = directory.rotate(service)
    typer.echo(f"{service}: new signing key {signer.key_id}; restart {service} to use it")
    if old is not None:
        typer.echo(
            f"{service}: old key {old} stays trusted for events in flight; to lock it out once they are through: "
            f"tunegate signing-keys retire {service} {old}"
        )


@signing_keys_app.command("retire")
def retire(
    service: str = typer.Argument(..., help="The service the key belongs to."),
    key_id: str = typer.Argument(..., help="The key id to retire (`tunegate signing-keys list` shows them)."),
) -> None:
    """Stop trusting KEY_ID of SERVICE: events signed with it are refused from then on, in-flight ones included.

    Its public key moves from trust/SERVICE/ to retired/SERVICE/ under the keys directory (kept for audit).
    The current signing key cannot be retired: rotate first.

    Services reading this keys directory refuse the key at their next event, without a restart; compose and
    Kubernetes deployments once the trust files are redeployed (docs/security.md)."""
    from shared.config import Settings
    from shared.security.keys import PrivateKeyError
    from shared.security.signing import KeyDirectory, KeyRetirementError

    _known_service(service)
    directory = KeyDirectory(Settings().keys_dir)
    try:
        retired_now = directory.retire(service, key_id)
    except (KeyRetirementError, PrivateKeyError) as exc:
        typer.echo(f"cannot retire: {exc}", err=True)
        raise typer.Exit(2) from None
    where = directory.root / "retired" / service / f"{key_id}.pub"
    if not retired_now:
        typer.echo(f"{service}: key {key_id} was already retired ({where})")
        return
    typer.echo(f"{service}: key {key_id} retired (public key kept at {where}); events signed with it are refused")
    # Deployments verify with a copy of trust/, which still holds the key until it is redeployed.
    typer.echo(
        "compose and Kubernetes deployments refuse it once trust/ is redeployed: compose `up -d --force-recreate`; "
        "Kubernetes `tunegate secrets kustomization DIR`, `kubectl apply -k DIR`, `kubectl -n tunegate rollout restart "
        "deployment`"
    )
