"""Two audit processes on one PostgreSQL ledger, one SIGKILLed mid-stream: the survivor reclaims what the dead
one had read but not committed, and the result is one unforked, verifying hash chain with every event exactly
once. Both replicas append concurrently; pg_advisory_xact_lock serialises each batch (the holder re-reads the
head under the lock), and a killed holder's transaction is rolled back by PostgreSQL, releasing the lock."""

from __future__ import annotations

import itertools
import json
import socket
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import select
from typer.testing import CliRunner

from services.audit.adapters.tables import entries
from services.audit.application import open_store
from services.cli.main import app
from shared.bus.groups import group_name
from shared.bus.liveness import consumer_name
from shared.bus.wire import body_of
from shared.config import Settings
from shared.events.envelope import Envelope
from tests.audit.test_audit_service import publish, sample_events
from tests.support import ServiceProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

runner = CliRunner()
BATCHES = 12
PER_BATCH = 40


def ledger_rows(settings: Settings) -> list[tuple[int, str, str, str]]:
    """(sequence, event_id, prev_hash, entry_hash) of every entry, in sequence order."""
    store = open_store(settings, create=False)
    try:
        if not store.has_schema():
            return []
        with store.read() as conn:
            query = select(entries.c.sequence, entries.c.event_id, entries.c.prev_hash, entries.c.entry_hash)
            return [tuple(row) for row in conn.execute(query.order_by(entries.c.sequence)).all()]  # type: ignore[misc]
    finally:
        store.db.dispose()


def pending_of(client: redis.Redis, consumer: str) -> list[str]:
    """Event ids of the stream entries the consumer read and has not acknowledged, on every stream."""
    ids: list[str] = []
    for key in client.scan_iter("tunegate.*"):
        stream = key.decode()
        if stream.endswith(".dlq") or client.type(key) != b"stream":
            continue
        try:
            rows = client.xpending_range(stream, group_name("audit"), "-", "+", 10_000, consumername=consumer)
        except redis.ResponseError:
            continue  # no audit group on this stream
        for row in rows:
            for _id, fields in client.xrange(stream, row["message_id"], row["message_id"]):
                ids.append(Envelope.from_wire(body_of(fields)).event_id)
    return ids


def test_sigkilled_replica_leaves_an_unforked_verifying_chain_with_every_event_once(
    tunegate_home: Path, redis_url: str, postgres_url: str
) -> None:
    settings = Settings(home=tunegate_home, database_url=postgres_url)
    env = {"TUNEGATE_DATABASE_URL": postgres_url, "TUNEGATE_READ_BATCH": "20"}
    first = ServiceProcess("services.audit", tunegate_home, redis_url, extra_env=env)
    second = ServiceProcess("services.audit", tunegate_home, redis_url, extra_env=env)
    client = redis.Redis.from_url(redis_url)
    published = []
    try:
        first.wait_ready()
        second.wait_ready()
        events = sample_events(BATCHES * PER_BATCH, "rep")
        killed_pending: list[str] = []
        for batch in range(BATCHES):
            chunk = events[batch * PER_BATCH : (batch + 1) * PER_BATCH]
            publish(redis_url, chunk)
            published += chunk
            if batch == BATCHES // 2:
                # Mid-stream, at a moment the victim holds entries it read and has not committed: those must be
                # reclaimed by the survivor (the victim's PostgreSQL transaction, lock and all, dies with it).
                victim = consumer_name("audit", socket.gethostname(), first.pid)
                extra = iter(sample_events(40 * PER_BATCH, "more"))
                deadline = time.monotonic() + 60
                while not pending_of(client, victim):
                    assert time.monotonic() < deadline, "the victim never held a batch"
                    more = [next(extra) for _ in range(PER_BATCH // 2)]  # keep both replicas fed
                    publish(redis_url, more)
                    published += more
                first.kill()
                killed_pending = pending_of(client, victim)
            time.sleep(0.05)
        publish(redis_url, published[:PER_BATCH])  # a redelivered batch adds nothing
        wait_for(lambda: len(ledger_rows(settings)) >= len(published), 90, "every event in the ledger")
        wait_for(lambda: not pending_of(client, victim), 30, "the dead replica's pending entries reclaimed")

        rows = ledger_rows(settings)
        assert [r[0] for r in rows] == list(range(len(published)))  # contiguous sequences: no gap, no fork
        assert sorted(r[1] for r in rows) == sorted(e.event_id for e in published)  # every event exactly once
        for previous, row in itertools.pairwise(rows):
            assert row[2] == previous[3], f"entry {row[0]} does not chain onto entry {previous[0]}"
        assert not pending_of(client, victim)
        # What the victim held when it died was re-read by the survivor and committed once.
        assert set(killed_pending) <= {r[1] for r in rows}

        wait_for(lambda: _signed(settings) >= len(published), 30, "a signed head over every entry")
        result = runner.invoke(
            app,
            ["audit", "verify", "--json"],
            env={"TUNEGATE_HOME": str(tunegate_home), "TUNEGATE_DATABASE_URL": postgres_url},
        )
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["ok"] is True and report["entries_checked"] == len(published)
        assert second.process.poll() is None, second.log()[-3000:]
    finally:
        client.close()
        first.stop()
        second.stop()


def _signed(settings: Settings) -> int:
    store = open_store(settings, create=False)
    try:
        with store.read() as conn:
            head = store.latest_head(conn)
            return head.tree_size if head else 0
    finally:
        store.db.dispose()
