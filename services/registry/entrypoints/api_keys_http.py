"""API key routes of the registry API: list (auditor, admin), create, rotate, revoke (admin). Same
authentication and JSON errors as the other routes (entrypoints/http.py adds these to its app).

The secret is made here, returned once in the response, and only its SHA-256 is stored and announced;
each change and its `apikey.*` event commit in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query

from services.registry.adapters import api_key_repository, outbox
from services.registry.api_key_schemas import ApiKeyCreate, ApiKeyCredentials, ApiKeyRevoke, ApiKeyRotate, ApiKeyView
from services.registry.domain import access
from services.registry.domain.api_keys import KEY_ID, TENANT, ApiKey, hash_secret, new_key_id, new_secret
from services.registry.domain.errors import Conflict, InvalidRequest, NotFound
from services.registry.domain.governance import Governance
from services.registry.domain.principals import Principal

if TYPE_CHECKING:
    from services.registry.entrypoints.http import RuntimeLike

ID_ATTEMPTS = 5


def _key_id(value: str) -> str:
    if not KEY_ID.fullmatch(value):
        raise NotFound(f"{value!r} is not an API key id (key_ and 16 lowercase letters or digits); no such key")
    return value


def add_api_key_routes(
    app: FastAPI, runtime: RuntimeLike, governance: Governance, requires: Callable[[tuple[str, ...], str], Any]
) -> None:
    @app.get("/keys", response_model=list[ApiKeyView])
    def keys(
        tenant: str | None = Query(default=None, description="Only the keys of this tenant."),
        _: Principal = requires(access.READ_API_KEYS, "listing API keys"),
    ) -> list[ApiKeyView]:
        if tenant is not None and not TENANT.fullmatch(tenant):
            raise InvalidRequest(f"tenant: {tenant!r} is not a tenant name")
        with runtime.db.transaction() as session:
            return [ApiKeyView.of(k) for k in api_key_repository.list_keys(session, tenant=tenant)]

    @app.post("/keys", response_model=ApiKeyCredentials, status_code=201)
    async def create_key(
        body: ApiKeyCreate, admin: Principal = requires(access.MANAGE_API_KEYS, "creating an API key")
    ) -> ApiKeyCredentials:
        now = governance.now()
        async with runtime.transaction(actor=admin.name) as ctx:
            for _ in range(ID_ATTEMPTS):  # 36^16 ids: a clash is all but impossible, but cheap to rule out
                key_id = new_key_id()
                if api_key_repository.load_key(ctx.db, key_id) is None:
                    break
            else:
                raise Conflict("could not draw an unused API key id; try again")
            secret = new_secret(key_id)
            try:
                key = ApiKey.create(
                    key_id=key_id,
                    name=body.name,
                    tenant=body.tenant,
                    models=list(body.models),
                    requests_per_minute=body.limits.requests_per_minute,
                    tokens_per_day=body.limits.tokens_per_day,
                    key_sha256=hash_secret(secret),
                    by=admin.name,
                    now=now,
                )
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from None
            outbox.commit_api_key(ctx, key, new=True)
        return ApiKeyCredentials(key=ApiKeyView.of(key), secret=secret)

    @app.post("/keys/{key_id}/rotate", response_model=ApiKeyCredentials)
    async def rotate_key(
        key_id: str,
        body: ApiKeyRotate,
        admin: Principal = requires(access.MANAGE_API_KEYS, "rotating an API key"),
    ) -> ApiKeyCredentials:
        kid = _key_id(key_id)
        secret = new_secret(kid)
        async with runtime.transaction(actor=admin.name, subject=kid) as ctx:
            key = api_key_repository.require_key(ctx.db, kid)
            key.rotate(key_sha256=hash_secret(secret), by=admin.name, now=governance.now())
            outbox.commit_api_key(ctx, key)
        return ApiKeyCredentials(key=ApiKeyView.of(key), secret=secret)

    @app.post("/keys/{key_id}/revoke", response_model=ApiKeyView)
    async def revoke_key(
        key_id: str, body: ApiKeyRevoke, admin: Principal = requires(access.MANAGE_API_KEYS, "revoking an API key")
    ) -> ApiKeyView:
        kid = _key_id(key_id)
        async with runtime.transaction(actor=admin.name, subject=kid) as ctx:
            key = api_key_repository.require_key(ctx.db, kid)
            try:
                key.revoke(by=admin.name, reason=body.reason, now=governance.now())
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from None
            outbox.commit_api_key(ctx, key)
        return ApiKeyView.of(key)

