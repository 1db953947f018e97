"""The outbox writer's direct SQLite statements write the rows SQLAlchemy would: the relay's queries find
them (timestamps compare with the cutoff as SQLAlchemy's own rows do), and the published mark hides them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from shared.bus.inbox import inbox_tables
from shared.bus.outbox_writer import OutboxWriter
from shared.events.envelope import Envelope
from shared.storage.db import Database


def envelope(n: int) -> Envelope:
    return Envelope(type="job.state_changed", producer="registry", actor="admin", subject=f"job-{n}",
                    payload={"job_id": f"job-{n}", "from_state": None, "to_state": "requested", "reason": ""})


def test_rows_written_directly_are_the_rows_sqlalchemy_writes(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'svc.db'}")
    tables = inbox_tables("svc")
    tables.metadata.create_all(db.engine)
    writer = OutboxWriter(db, tables)
    direct = [envelope(i) for i in range(3)]
    writer.stage(direct)
    with db.engine.begin() as connection:  # the same rows through SQLAlchemy, for comparison
        tables.stage(connection, [through_sqlalchemy := envelope(9)], causation_id=None)
    later = datetime.now(UTC) + timedelta(seconds=1)
    with db.transaction() as session:
        pending = tables.unpublished_older_than(session, later)
        assert [e.event_id for e in pending][:3] == [e.event_id for e in direct]
        assert len(pending) == 4
        assert tables.unpublished_older_than(session, datetime.now(UTC) - timedelta(minutes=1)) == []
        rows = session.execute(tables.outbox.select().order_by(tables.outbox.c.event_id)).all()
    assert {type(row.created_at) for row in rows} == {datetime}, "read back as SQLAlchemy reads its own rows"
    assert {row.body for row in rows} >= {e.to_wire() for e in direct}, "the exact bytes that go on the wire"

    writer.mark_published([direct[0].event_id, direct[2].event_id])
    with db.transaction() as session:
        left = tables.unpublished_older_than(session, later)
    assert sorted(e.event_id for e in left) == sorted([direct[1].event_id, through_sqlalchemy.event_id])
    writer.close()
    db.dispose()


def test_published_rows_past_their_retention_are_pruned_and_nothing_else(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'svc.db'}")
    tables = inbox_tables("svc")
    tables.metadata.create_all(db.engine)
    writer = OutboxWriter(db, tables)
    old, fresh, unpublished = [envelope(i) for i in range(3)], [envelope(10)], [envelope(20)]
    writer.stage([*old, *fresh, *unpublished])
    writer.mark_published([e.event_id for e in old + fresh])
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    with db.engine.begin() as connection:  # as if published three hours ago
        connection.execute(tables.outbox.update().where(tables.outbox.c.event_id.in_([e.event_id for e in old]))
                           .values(published_at=long_ago))
    cutoff = datetime.now(UTC) - timedelta(hours=1)
    with db.transaction() as session:
        assert tables.prune_published(session, cutoff, limit=2) == 2, "at most `limit` per transaction"
    with db.transaction() as session:
        assert tables.prune_published(session, cutoff) == 1
        assert tables.prune_published(session, cutoff) == 0
        left = {row.event_id for row in session.execute(select(tables.outbox.c.event_id))}
    assert left == {fresh[0].event_id, unpublished[0].event_id}
    writer.close()
    db.dispose()
