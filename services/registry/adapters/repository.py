"""Queries over the registry tables. Callers own the session (and so the transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from services.registry.adapters.tables import JobRow, PrincipalRow
from services.registry.domain.errors import Conflict, NotFound
from services.registry.domain.principals import hash_token


def get_job(session: Session, job_id: str, *, with_history: bool = False) -> JobRow | None:
    query = select(JobRow).where(JobRow.id == job_id)
    if with_history:
        query = query.options(selectinload(JobRow.transitions), selectinload(JobRow.approvals))
    return session.scalars(query).one_or_none()


def require_job(session: Session, job_id: str, *, with_history: bool = False) -> JobRow:
    job = get_job(session, job_id, with_history=with_history)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def list_jobs(session: Session, *, state: str | None = None, limit: int = 500) -> Sequence[JobRow]:
    query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit)
    if state is not None:
        query = query.where(JobRow.state == state)
    return session.scalars(query).all()


def overdue_job_ids(session: Session, *, now: datetime, state: str) -> list[str]:
    query = select(JobRow.id).where(JobRow.state == state, JobRow.approval_expires_at <= now)
    return list(session.scalars(query))


def principal_by_token(session: Session, token: str) -> PrincipalRow | None:
    return session.scalars(select(PrincipalRow).where(PrincipalRow.token_sha256 == hash_token(token))).one_or_none()


def get_principal(session: Session, name: str) -> PrincipalRow | None:
    return session.get(PrincipalRow, name)


def add_principal(
    session: Session, *, name: str, roles: list[str], token: str, created_by: str, now: datetime
) -> PrincipalRow:
    if session.get(PrincipalRow, name) is not None:
        raise Conflict(f"principal {name!r} already exists (revoke it or pick another name)")
    row = PrincipalRow(name=name, roles=roles, token_sha256=hash_token(token), created_at=now, created_by=created_by)
    session.add(row)
    return row


def list_principals(session: Session) -> Sequence[PrincipalRow]:
    return session.scalars(select(PrincipalRow).order_by(PrincipalRow.created_at, PrincipalRow.name)).all()
