"""Inbox (events already handled) and outbox (events to publish) tables, one pair per service.

They live in the service's own database so that "handled" and "what it emitted" commit atomically
with the handler's effects; that is what makes at-least-once delivery safe."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    select,
    update,
)
from sqlalchemy.orm import Session

from shared.events.envelope import Envelope


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class InboxTables:
    metadata: MetaData
    inbox: Table
    outbox: Table

    def already_handled(self, session: Session, event_id: str) -> bool:
        return (
            session.execute(select(self.inbox.c.event_id).where(self.inbox.c.event_id == event_id)).first() is not None
        )

    def mark_handled(self, session: Session, envelope: Envelope, outgoing: list[Envelope]) -> None:
        session.execute(self.inbox.insert().values(event_id=envelope.event_id, type=envelope.type, handled_at=_now()))
        for position, event in enumerate(outgoing):
            session.execute(
                self.outbox.insert().values(
                    event_id=event.event_id,
                    causation_id=envelope.event_id,
                    position=position,
                    stream=event.stream,
                    body=event.to_wire(),
                    created_at=_now(),
                    published_at=None,
                )
            )

    def stage(self, session: Session | Connection, outgoing: list[Envelope], causation_id: str | None) -> None:
        """Outbox rows for events emitted outside an event handler (HTTP request, timer), in one statement."""
        if not outgoing:
            return
        now = _now()
        session.execute(self.outbox.insert(), [
            {"event_id": event.event_id, "causation_id": causation_id, "position": position, "stream": event.stream,
             "body": event.to_wire(), "created_at": now, "published_at": None}
            for position, event in enumerate(outgoing)
        ])

    def unpublished_for(self, session: Session, causation_id: str) -> list[Envelope]:
        rows = session.execute(
            select(self.outbox.c.body)
            .where(self.outbox.c.causation_id == causation_id, self.outbox.c.published_at.is_(None))
            .order_by(self.outbox.c.position)
        ).all()
        return [Envelope.from_wire(row.body) for row in rows]

    def unpublished_older_than(self, session: Session, cutoff: datetime, limit: int = 500) -> list[Envelope]:
        rows = session.execute(
            select(self.outbox.c.body)
            .where(self.outbox.c.published_at.is_(None), self.outbox.c.created_at < cutoff)
            .order_by(self.outbox.c.created_at, self.outbox.c.position)
            .limit(limit)
        ).all()
        return [Envelope.from_wire(row.body) for row in rows]

    def prune_published(self, session: Session | Connection, cutoff: datetime, limit: int = 5000) -> int:
        """Delete up to `limit` rows published before `cutoff`; returns how many went. A published row is
        never read again (redelivery looks for unpublished ones; the inbox, kept, is what stops a handler
        running twice), and a high-rate emitter (the gateway: one row per request) would grow it forever."""
        doomed = (
            select(self.outbox.c.event_id)
            .where(self.outbox.c.published_at.is_not(None), self.outbox.c.published_at < cutoff)
            .limit(limit)
        )
        result = session.execute(delete(self.outbox).where(self.outbox.c.event_id.in_(doomed)))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def mark_published(self, session: Session | Connection, event_ids: list[str]) -> None:
        if event_ids:
            session.execute(
                update(self.outbox).where(self.outbox.c.event_id.in_(event_ids)).values(published_at=_now())
            )


def inbox_tables(service: str) -> InboxTables:
    metadata = MetaData()
    inbox = Table(
        f"{service}_inbox",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("type", String(100), nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False),
    )
    outbox = Table(
        f"{service}_outbox",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("causation_id", String(64), index=True),
        Column("position", Integer, nullable=False),
        Column("stream", String(100), nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, index=True),
        Column("published_at", DateTime(timezone=True), index=True),
    )
    return InboxTables(metadata=metadata, inbox=inbox, outbox=outbox)
