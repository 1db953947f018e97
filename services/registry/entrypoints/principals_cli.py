"""`tunegate principals create|rotate|revoke|list` and `tunegate admin bootstrap`: clients of the registry
API. Keys are made on this machine (only public halves are sent); tokens and keys are kept 0600 under
$TUNEGATE_HOME/credentials."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from services.registry.domain.principals import ROLES, validate_name, validate_roles
from services.registry.entrypoints import cli_common as common
from services.registry.entrypoints.cli_common import JsonOption, TokenOption, call, console, credentials, fail, guard
from services.registry.schemas import (
    AdminBootstrap,
    PrincipalCreate,
    PrincipalCredentials,
    PrincipalRevoke,
    PrincipalRotate,
)
from shared.config import Settings

principals_app = typer.Typer(
    help="Principals (requester, approver, deployer, auditor, admin): created, rotated and revoked through the "
    "registry API with an admin token; every change is an audited event.",
    no_args_is_help=True,
)
admin_app = typer.Typer(help="The first admin of a fresh registry.", no_args_is_help=True)


def _new_signing_key(wanted: bool | None, roles: list[str]) -> tuple[Any, str | None]:
    """A fresh Ed25519 key pair made here (the private half never leaves this machine) when the principal
    submits jobs, or when asked; returns (private key or None, public key hex or None)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from shared.security.keys import public_key_raw

    if not (wanted if wanted is not None else "requester" in roles):
        return None, None
    key = Ed25519PrivateKey.generate()
    return key, public_key_raw(key.public_key()).hex()


def _store_credentials(settings: Settings, name: str, token: str, key: Any) -> list[Path]:
    store = credentials(settings)
    saved = [guard(lambda: store.save_token(name, token))]
    if key is not None:
        saved.append(guard(lambda: store.save_signing_key(name, key)))
    return saved


def _show_credentials(created: PrincipalCredentials, saved: list[Path], verb: str, as_json: bool) -> None:
    view = created.principal
    if as_json:
        print(json.dumps({**view.model_dump(mode="json"), "token": created.token, "stored": [str(p) for p in saved]}))
        return
    console.print(f"principal {view.name} {verb} with roles {', '.join(view.roles)}", highlight=False)
    console.print(f"token (shown once): {created.token}", highlight=False, soft_wrap=True)
    current = next((k for k in reversed(view.keys) if k.retired_at is None), None)
    if current is not None:
        console.print(f"event-signing key {current.key_id} registered", highlight=False)
    for path in saved:
        console.print(f"saved {path}", highlight=False)


@principals_app.command("create")
def principals_create(
    name: Annotated[str, typer.Argument(help="Principal name (e.g. alice@example.com).")],
    role: Annotated[list[str], typer.Option("--role", help=f"Role, repeatable: {', '.join(ROLES)}.")],
    signing_key: Annotated[
        bool | None,
        typer.Option(
            "--signing-key/--no-signing-key",
            help="Make an event-signing key pair here and register its public half (default: for requesters).",
        ),
    ] = None,
    public_key: Annotated[
        str | None, typer.Option(help="Register this Ed25519 public key (hex) instead: an upstream system's own.")
    ] = None,
    store: Annotated[bool, typer.Option(help="Keep the token (and key) under $TUNEGATE_HOME/credentials/NAME.")] = True,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a principal through the registry API (admin token); prints its token once."""
    try:
        validate_name(name)
        roles = validate_roles(role)
    except ValueError as exc:
        raise fail(str(exc), code=2) from None
    settings = Settings()
    key, public_hex = (None, public_key) if public_key else _new_signing_key(signing_key, roles)
    client = common.client_for(token)
    created = call(lambda: client.create_principal(PrincipalCreate(name=name, roles=roles, public_key=public_hex)))
    saved = _store_credentials(settings, name, created.token, key) if store else []
    _show_credentials(created, saved, "created", as_json)


@principals_app.command("rotate")
def principals_rotate(
    name: Annotated[str, typer.Argument(help="Principal name.")],
    signing_key: Annotated[
        bool | None,
        typer.Option(
            "--signing-key/--no-signing-key",
            help="Also replace the event-signing key (default: when the principal has one).",
        ),
    ] = None,
    store: Annotated[
        bool, typer.Option(help="Keep the new token (and key) under $TUNEGATE_HOME/credentials/NAME.")
    ] = True,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """New credentials: a new token always; a new signing key (made here) when it has one. The old token stops
    working at once; the old public key is kept to verify what it signed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from shared.security.keys import public_key_raw

    guard(lambda: validate_name(name))
    settings = Settings()
    client = common.client_for(token)
    if signing_key is None:
        listed = {p.name: p for p in call(client.list_principals)}
        if name not in listed:
            raise fail(f"principal {name!r} not found")
        signing_key = any(k.retired_at is None for k in listed[name].keys)
    key = Ed25519PrivateKey.generate() if signing_key else None
    public_hex = public_key_raw(key.public_key()).hex() if key is not None else None
    rotated = call(lambda: client.rotate_principal(name, PrincipalRotate(public_key=public_hex)))
    saved = _store_credentials(settings, name, rotated.token, key) if store else []
    _show_credentials(rotated, saved, "rotated", as_json)


@principals_app.command("list")
def principals_list(token: TokenOption = None, as_json: JsonOption = False) -> None:
    """List principals and their signing keys (never tokens); needs role auditor or admin."""
    client = common.client_for(token)
    views = call(client.list_principals)
    if as_json:
        print(json.dumps([v.model_dump(mode="json") for v in views], indent=2))
        return
    table = Table("name", "roles", "signing key", "created", "by", "revoked")
    for v in views:
        current = next((k.key_id for k in reversed(v.keys) if k.retired_at is None), "")
        table.add_row(
            v.name,
            ", ".join(v.roles),
            current,
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            v.created_by,
            v.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if v.revoked_at else "",
        )
    console.print(table)


@principals_app.command("revoke")
def principals_revoke(
    name: Annotated[str, typer.Argument(help="Principal name.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit ledger).")] = "",
    token: TokenOption = None,
) -> None:
    """Revoke a principal: its token and key stop working at once. The record stays (approvals refer to it)."""
    guard(lambda: validate_name(name))
    client = common.client_for(token)
    call(lambda: client.revoke_principal(name, PrincipalRevoke(reason=reason)))
    guard(lambda: credentials(Settings()).forget(name))
    console.print(f"principal {name} revoked", highlight=False)


# ---------------------------------------------------------------- admin bootstrap


class BootstrapClosed(RuntimeError):
    """Nothing to bootstrap: an admin exists (or this home is not the registry's)."""


def bootstrap_first_admin(settings: Settings, *, name: str = "admin", wait_s: float = 30.0) -> tuple[str, Path]:
    """Present the registry's one-time secret and store the first admin's token 0600; returns (token, path).
    Raises BootstrapClosed when there is nothing to bootstrap, RuntimeError when the registry is not there."""
    from services.registry.adapters.credentials import bootstrap_secret_path

    store = credentials(settings)
    if store.admin_token() is not None:
        raise BootstrapClosed(f"an admin token is already stored in {store.admin_token_path}")
    deadline = time.monotonic() + wait_s
    while True:  # `tunegate up` reports ready before the API listens; its URL file appears when it does
        try:
            settings.resolved_registry_url()
            break
        except RuntimeError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    secret_path = bootstrap_secret_path(settings)
    if not secret_path.is_file():
        raise BootstrapClosed(
            f"no bootstrap secret at {secret_path}: the registry writes one only while no admin exists (ask an "
            "admin for a principal, or run this on the registry's host with its TUNEGATE_HOME)"
        )
    client = common.open_client(settings, None)
    created = call(
        lambda: client.bootstrap_admin(AdminBootstrap(name=name, secret=secret_path.read_text("ascii").strip()))
    )
    secret_path.unlink(missing_ok=True)
    return created.token, store.save_admin_token(created.token, name=name)


def bootstrap_after_up(settings: Settings, out: Console) -> None:
    """`tunegate up`: issue the first admin token once, on a registry that has none."""
    try:
        token, path = bootstrap_first_admin(settings)
    except BootstrapClosed:
        return
    except (RuntimeError, typer.Exit) as exc:
        out.print(f"[yellow]first admin not bootstrapped: {exc}; run `tunegate admin bootstrap`")
        return
    out.print(f"first admin 'admin' created; token (shown once): {token}", highlight=False, soft_wrap=True)
    out.print(f"saved {path} (0600): the CLI uses it when no --token or --as is given", highlight=False)


@admin_app.command("bootstrap")
def admin_bootstrap(
    name: Annotated[str, typer.Option(help="Name of the first admin.")] = "admin",
    as_json: JsonOption = False,
) -> None:
    """Create the first admin of a registry that has none, with the one-time secret the registry wrote under
    $TUNEGATE_HOME; shows the token once and stores it in $TUNEGATE_HOME/credentials/admin.token (0600)."""
    guard(lambda: validate_name(name))
    settings = Settings()
    try:
        token, path = bootstrap_first_admin(settings, name=name, wait_s=5.0)
    except (BootstrapClosed, RuntimeError) as exc:
        raise fail(f"admin bootstrap refused: {exc}") from None
    if as_json:
        print(json.dumps({"name": name, "token": token, "stored": str(path)}))
        return
    console.print(f"first admin {name!r} created; token (shown once): {token}", highlight=False, soft_wrap=True)
    console.print(f"saved {path} (0600)", highlight=False)
