"""Rows <-> API key aggregates (domain/api_keys.py). Callers own the session (and so the transaction)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.registry.adapters.tables import ApiKeyRow
from services.registry.adapters.write_back import unrevoked_row
from services.registry.domain.api_keys import ApiKey
from services.registry.domain.errors import Conflict, NotFound


def _to_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        tenant=row.tenant,
        models=list(row.models),
        requests_per_minute=row.requests_per_minute,
        tokens_per_day=row.tokens_per_day,
        key_sha256=row.key_sha256,
        created_at=row.created_at,
        created_by=row.created_by,
        rotated_at=row.rotated_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        revoke_reason=row.revoke_reason,
    )


def load_key(session: Session, key_id: str) -> ApiKey | None:
    row = session.get(ApiKeyRow, key_id)
    return None if row is None else _to_key(row)


def require_key(session: Session, key_id: str) -> ApiKey:
    key = load_key(session, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} not found")
    return key


def list_keys(session: Session, *, tenant: str | None = None) -> list[ApiKey]:
    query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.key_id)
    if tenant is not None:
        query = query.where(ApiKeyRow.tenant == tenant)
    return [_to_key(row) for row in session.scalars(query)]


def add_key(session: Session, key: ApiKey) -> None:
    if session.get(ApiKeyRow, key.key_id) is not None:
        raise Conflict(f"API key {key.key_id} already exists")
    save_key(session, key)


def save_key(session: Session, key: ApiKey) -> None:
    row = unrevoked_row(session, ApiKeyRow, key.key_id, revoked_at=key.revoked_at, what=f"API key {key.key_id}")
    if row is None:
        row = ApiKeyRow(key_id=key.key_id, created_at=key.created_at, created_by=key.created_by)
        session.add(row)
    row.name = key.name
    row.tenant = key.tenant
    row.models = list(key.models)
    row.requests_per_minute = key.requests_per_minute
    row.tokens_per_day = key.tokens_per_day
    row.key_sha256 = key.key_sha256
    row.rotated_at = key.rotated_at
    row.revoked_at = key.revoked_at
    row.revoked_by = key.revoked_by
    row.revoke_reason = key.revoke_reason
    session.flush()
