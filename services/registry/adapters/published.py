"""Events the registry published, read back from its own outbox (shared/bus/inbox.py): the signed envelopes
stay there after publication, so the registry can show anyone the exact payload the audit ledger hashed
(the ledger keeps only payload_sha256). Read-only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import inspect, select

from shared.bus.inbox import inbox_tables
from shared.events.catalog import spec_for
from shared.json_input import parse_json
from shared.storage.db import Database

SERVICE = "registry"


class OutboxMissing(LookupError):
    """The registry's outbox table is not in this database (the registry never ran against it)."""


class PublishedEvent(BaseModel):
    event_id: str
    type: str
    created_at: datetime
    payload: dict[str, Any]


def published_events(db: Database, event_type: str, **payload_fields: str) -> list[PublishedEvent]:
    """Events of `event_type` the registry emitted whose payload has each of `payload_fields`, oldest first.

    Only the type's stream is read (model events are few), and each body is parsed as plain JSON: the
    payload must be the one that was hashed, not a re-validation under today's catalog."""
    outbox = inbox_tables(SERVICE).outbox
    if not inspect(db.engine).has_table(outbox.name):
        raise OutboxMissing(
            f"no {outbox.name} table at {db.engine.url.render_as_string(hide_password=True)} (has the registry run?)"
        )
    stream = spec_for(event_type).stream.value
    query = (
        select(outbox.c.event_id, outbox.c.created_at, outbox.c.body)
        .where(outbox.c.stream == stream)
        .order_by(outbox.c.created_at, outbox.c.position)
    )
    found: list[PublishedEvent] = []
    with db.engine.connect() as conn:
        for event_id, created_at, body in conn.execute(query):
            try:
                envelope = parse_json(body)
            except (ValueError, UnicodeDecodeError):
                continue  # the registry wrote every body from a validated envelope; a broken one names nothing
            if not isinstance(envelope, dict) or envelope.get("type") != event_type:
                continue
            payload = envelope.get("payload")
            if not isinstance(payload, dict):
                continue
            if all(payload.get(key) == value for key, value in payload_fields.items()):
                found.append(PublishedEvent(event_id=event_id, type=event_type, created_at=created_at, payload=payload))
    return found
