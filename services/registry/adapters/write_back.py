"""Writing an aggregate back without overwriting what another transaction changed since it was read.

A versioned row's `version_id_col` makes SQLAlchemy's UPDATE say `WHERE version = <the row's version>`, but
the version it puts there is the row's as *this* session last loaded it. A request reads the aggregate
(row -> domain object; the row object may then be garbage-collected out of the identity map), decides, and
saves: the save loads the row again, now at whatever version another replica committed meanwhile, and the
UPDATE matches. So a save compares the row's current version with the one the aggregate was read at, and the
version column still refuses a writer that commits between that comparison and the UPDATE.

Principals and API keys have no version column; what must never be lost there is a revocation, so their
rows are locked (SELECT ... FOR UPDATE on PostgreSQL; SQLite has one writer at a time) and a save that would
un-revoke is refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from services.registry.domain.errors import Conflict

Row = TypeVar("Row")


def versioned_row(session: Session, row_class: type[Row], key: Any, *, read_at: int, what: str) -> Row | None:
    """The stored row of an aggregate read at version `read_at` (0: a new aggregate, no row expected), read
    afresh; None when there is none yet. Conflict when another transaction has changed it since."""
    row = session.get(row_class, key, populate_existing=True)
    if row is not None and row.version != read_at:  # type: ignore[attr-defined]
        raise Conflict(f"{what} changed while this request ran (another request or replica changed it "
                       f"first); read it again and retry")
    return row


def unrevoked_row(session: Session, row_class: type[Row], key: Any, *, revoked_at: datetime | None,
                  what: str) -> Row | None:
    """The stored row of a principal or API key, locked for this transaction; Conflict when it was revoked
    meanwhile and the save would clear that (a rotation read before the revocation committed)."""
    row = session.get(row_class, key, populate_existing=True, with_for_update=True)
    if row is not None and revoked_at is None and row.revoked_at is not None:  # type: ignore[attr-defined]
        raise Conflict(f"{what} was revoked while this request ran; a revocation is not undone")
    return row
