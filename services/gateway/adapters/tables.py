"""The gateway's own record of what it follows: every `model.deployed` / `model.retired` / `apikey.*` event it
handled, in order. The routing and key tables are a projection of this log (replayed at start), so a
restarted gateway serves exactly what it served before without asking the registry, and replicas sharing
the database agree. These events are rare (deployments, key changes), so replaying them is cheap."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, insert, select
from sqlalchemy.orm import Session

metadata = MetaData()

followed_events = Table(
    "gateway_followed_events",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("type", String(80), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)


def record(session: Session, event_id: str, event_type: str, payload: dict[str, Any]) -> None:
    session.execute(insert(followed_events).values(
        event_id=event_id, type=event_type, payload=payload, recorded_at=datetime.now(UTC),
    ))


def replay(session: Session) -> Iterator[tuple[str, dict[str, Any]]]:
    rows = session.execute(
        select(followed_events.c.type, followed_events.c.payload).order_by(followed_events.c.position)
    )
    for row in rows:
        yield row.type, row.payload
