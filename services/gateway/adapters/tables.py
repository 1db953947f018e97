"""The gateway's own record of what it follows: every `model.deployed` / `model.retired` / `apikey.*` event
handled by any replica, in order. The routing and key tables are a projection of this log: replayed at
start (a restarted gateway serves what it served before without asking the registry) and followed while
running (`StateFollower`), so every replica sharing the database serves the same routes and keys although
each event was handled by only one of them. These events are rare (deployments, key changes), so reading
the log is cheap."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, insert, select
from sqlalchemy.orm import Session

from services.gateway.domain.state import Change, GatewayState
from shared.storage.db import Database

log = logging.getLogger("tunegate.gateway.state")

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

POLL_INTERVAL_S = 1.0
"""How soon a replica learns of an event another replica handled (its own are applied at once)."""


def record(session: Session, event_id: str, event_type: str, payload: dict[str, Any]) -> None:
    session.execute(insert(followed_events).values(
        event_id=event_id, type=event_type, payload=payload, recorded_at=datetime.now(UTC),
    ))


def replay(session: Session, after: int = 0) -> Iterator[tuple[int, str, dict[str, Any]]]:
    rows = session.execute(
        select(followed_events.c.position, followed_events.c.type, followed_events.c.payload)
        .where(followed_events.c.position > after)
        .order_by(followed_events.c.position)
    )
    for row in rows:
        yield row.position, row.type, row.payload


class StateFollower:
    """Applies the log to the in-memory state in position order, from where it last stopped. Handlers record
    and `wake` it (it runs right after their commit); a timer covers what other replicas recorded."""

    def __init__(self, db: Database, state: GatewayState, on_change: Callable[[Change], None]) -> None:
        self.db = db
        self.state = state
        self.on_change = on_change
        self.position = 0
        self._wake = asyncio.Event()

    def catch_up(self) -> list[Change]:
        changes = []
        with self.db.transaction() as session:
            for position, event_type, payload in replay(session, self.position):
                changes.append(self.state.apply(event_type, payload))
                self.position = position
        return changes

    def wake(self) -> None:
        self._wake.set()

    async def run(self, _runtime: object = None) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=POLL_INTERVAL_S)
            self._wake.clear()
            try:
                for change in self.catch_up():
                    self.on_change(change)
            except Exception:  # a failed read is retried on the next tick; the state is left as it was
                log.exception("following the gateway's event log failed")
