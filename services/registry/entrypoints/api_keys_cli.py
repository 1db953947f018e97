"""`tunegate keys create|list|rotate|revoke`: gateway API keys, through the registry API with an admin
token (listing: auditor or admin). A new secret is printed once and, with `--save FILE`, written there
0600; the registry keeps only its SHA-256. Arguments are checked before any request (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from services.registry.api_key_schemas import ApiKeyCreate, ApiKeyCredentials, ApiKeyRevoke
from services.registry.domain.api_keys import (
    KEY_ID,
    MAX_REQUESTS_PER_MINUTE,
    MAX_TOKENS_PER_DAY,
    validate_key_name,
    validate_limits,
    validate_models,
    validate_tenant,
)
from services.registry.entrypoints import cli_common as common
from services.registry.entrypoints.cli_common import JsonOption, TokenOption, call, console, fail, guard
from shared.events.inference import ApiKeyLimits

api_keys_app = typer.Typer(
    help="Gateway API keys (scoped to a tenant and models, with request and token budgets): created, rotated "
    "and revoked through the registry API with an admin token; every change is an audited event.",
    no_args_is_help=True,
)

SaveOption = Annotated[
    Path | None,
    typer.Option("--save", help="Also write the secret to this new file (0600); refused if the file exists."),
]


def _check_key_id(key_id: str) -> str:
    if not KEY_ID.fullmatch(key_id):
        raise fail(f"{key_id!r} is not an API key id (key_ and 16 lowercase letters or digits)", code=2)
    return key_id


def _check_save_target(path: Path | None) -> None:
    if path is not None and path.exists():
        raise fail(f"--save {path}: the file exists; choose a new file (a secret is never overwritten)", code=2)


def _show(created: ApiKeyCredentials, verb: str, save: Path | None, as_json: bool) -> None:
    from shared.security.keys import write_secret

    if save is not None:
        guard(lambda: write_secret(save, (created.secret + "\n").encode("ascii")))
    key = created.key
    if as_json:
        out = {**key.model_dump(mode="json"), "secret": created.secret, "saved": str(save) if save else None}
        print(json.dumps(out))
        return
    models = ", ".join(key.models)
    console.print(
        f"API key {key.key_id} ({key.name}) {verb} for tenant {key.tenant}, models {models}; "
        f"{key.limits.requests_per_minute} requests/min, {key.limits.tokens_per_day} tokens/day",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"secret (shown once): {created.secret}", highlight=False, soft_wrap=True)
    if save is not None:
        console.print(f"saved {save} (0600)", highlight=False)


@api_keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant whose deployments the key may call.")],
    model: Annotated[
        list[str],
        typer.Option(
            "--model", help="A model the key may call (alias, version id, upstream name), or '*'; repeatable."
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="What the key is for (a person or system).")],
    rpm: Annotated[
        int, typer.Option("--rpm", help=f"Requests per minute (sliding), 1-{MAX_REQUESTS_PER_MINUTE}.")
    ] = ApiKeyLimits().requests_per_minute,
    tokens_per_day: Annotated[
        int, typer.Option("--tokens-per-day", help=f"Prompt + completion tokens per UTC day, 1-{MAX_TOKENS_PER_DAY}.")
    ] = ApiKeyLimits().tokens_per_day,
    save: SaveOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key (admin token); prints its secret once."""
    guard(lambda: (validate_tenant(tenant), validate_models(model), validate_limits(rpm, tokens_per_day)))
    guard(lambda: validate_key_name(name))
    _check_save_target(save)
    request = ApiKeyCreate(
        name=name,
        tenant=tenant,
        models=model,
        limits=ApiKeyLimits(requests_per_minute=rpm, tokens_per_day=tokens_per_day),
    )
    client = common.client_for(token)
    _show(call(lambda: client.create_api_key(request)), "created", save, as_json)


@api_keys_app.command("rotate")
def rotate(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    save: SaveOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """A new secret for a key (admin token); the old one stops working as soon as the gateway hears of it."""
    _check_key_id(key_id)
    _check_save_target(save)
    client = common.client_for(token)
    _show(call(lambda: client.rotate_api_key(key_id)), "rotated", save, as_json)


@api_keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit ledger).")],
    token: TokenOption = None,
) -> None:
    """Revoke a key (admin token): it stops working at once and cannot be rotated back. The record stays."""
    _check_key_id(key_id)
    if not reason.strip():
        raise fail("--reason: say why the key is revoked (it goes to the audit ledger)", code=2)
    client = common.client_for(token)
    call(lambda: client.revoke_api_key(key_id, ApiKeyRevoke(reason=reason.strip())))
    console.print(f"API key {key_id} revoked", highlight=False)


@api_keys_app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's keys.")] = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List API keys (never their secrets); needs role auditor or admin."""
    if tenant is not None:
        guard(lambda: validate_tenant(tenant))
    client = common.client_for(token)
    views = call(lambda: client.list_api_keys(tenant=tenant))
    if as_json:
        print(json.dumps([v.model_dump(mode="json") for v in views], indent=2))
        return
    table = Table("key", "name", "tenant", "models", "rpm", "tokens/day", "created", "by", "revoked")
    for v in views:
        table.add_row(
            v.key_id,
            v.name,
            v.tenant,
            ", ".join(v.models),
            str(v.limits.requests_per_minute),
            str(v.limits.tokens_per_day),
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            v.created_by,
            v.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if v.revoked_at else "",
        )
    console.print(table)
