"""What every registry CLI command shares: output, errors, credentials, and the API client with its token.

A token comes from `--token`, else the one kept for `--as NAME` (in $TUNEGATE_HOME/credentials/NAME/token, or,
for the first admin, the credentials/admin.token that `tunegate up` saved: CredentialStore.token_paths
decides), else $TUNEGATE_TOKEN, else the first admin's admin.token. fastapi, sqlalchemy and httpx are imported
inside the functions that use them, so `tunegate --help` stays fast."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from shared.config import Settings

if TYPE_CHECKING:
    from services.registry.adapters.client import RegistryClient
    from services.registry.adapters.credentials import CredentialStore

console = Console()
err_console = Console(stderr=True)

TOKEN_ENV = "TUNEGATE_TOKEN"
TokenOption = Annotated[
    str | None,
    typer.Option("--token", help=f"Bearer token (default: --as NAME's stored token, ${TOKEN_ENV}, admin.token)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def credentials(settings: Settings) -> CredentialStore:
    from services.registry.adapters.credentials import CredentialStore

    return CredentialStore(settings)


def resolve_token(settings: Settings, token: str | None, principal: str | None = None) -> str:
    """--token, else --as NAME's stored token, else $TUNEGATE_TOKEN, else the stored admin token."""
    if token:
        return token
    store = credentials(settings)
    if principal is not None:
        stored = guard(lambda: store.token(principal))
        if stored is None:
            raise fail(_no_token_for(store, principal))
        return stored
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env
    admin = store.admin_token()
    if admin:
        return admin
    raise fail(
        f"no token: pass --token or --as NAME, set ${TOKEN_ENV}, or bootstrap the first admin with "
        f"`tunegate admin bootstrap` (it stores {store.admin_token_path})"
    )


def _no_token_for(store: CredentialStore, principal: str) -> str:
    """Why `--as principal` found no token, where it looked, and what would put one there. `principals create`
    is suggested only as the way for a principal that does not exist: for one that does the registry answers
    409, and `rotate` is what stores a new token here."""
    looked = " or ".join(str(path) for path in store.token_paths(principal))
    if principal == store.first_admin_name():
        return (
            f"no token for the first admin {principal!r} on this machine (looked for {looked}); pass --token, run "
            f"`tunegate admin bootstrap` if the registry has no admin yet, or have another admin run "
            f"`tunegate principals rotate {principal}` here"
        )
    return (
        f"no token for principal {principal!r} on this machine (looked for {looked}); pass --token, or have an admin "
        f"run here `tunegate principals rotate {principal}` if the principal exists, or "
        f"`tunegate principals create {principal} --role ...` if it does not"
    )


def open_client(settings: Settings, token: str | None) -> RegistryClient:
    """The registry API client; tests replace this function to talk to a TestClient."""
    import httpx

    from services.registry.adapters.client import RegistryClient

    try:
        base_url = settings.resolved_registry_url()
    except RuntimeError as exc:
        raise fail(str(exc)) from None
    return RegistryClient(httpx.Client(base_url=base_url, timeout=30.0), token)


def guard(action: Any) -> Any:
    """Run one step; a credential problem or an invalid name becomes a clear error, never a traceback."""
    from services.registry.adapters.credentials import CredentialError

    try:
        return action()
    except CredentialError as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:
        raise fail(str(exc), code=2) from None


def call(action: Any) -> Any:
    import httpx

    from services.registry.adapters.client import RegistryAPIError
    from shared.ids import UnsafeIdError

    try:
        return action()
    except UnsafeIdError as exc:  # an id the client will not put in a path (adapters/client.py _segment)
        raise fail(str(exc), code=2) from None
    except RegistryAPIError as exc:
        raise fail(f"{exc.detail} (HTTP {exc.status} {exc.error})") from None
    except httpx.HTTPError as exc:
        raise fail(f"registry API unreachable: {exc}") from None


def client_for(token: str | None, principal: str | None = None) -> RegistryClient:
    settings = Settings()
    return open_client(settings, resolve_token(settings, token, principal))
