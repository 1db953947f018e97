"""The audit service as a real process over a real Redis: exactly one entry per event, signed, verifiable,
surviving a Redis crash; tampering with the database is caught by `tunegate audit verify`. On SQLite, or on
PostgreSQL when TUNEGATE_TEST_DATABASE_URL is set (tests/conftest.py tunegate_home)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.audit.application import open_store
from services.cli.main import app
from shared.bus.publisher import Publisher
from shared.config import Settings
from shared.events.envelope import Envelope
from shared.stack.redis_server import EmbeddedRedis
from tests.support import ServiceProcess, keys, sign, wait_for

pytestmark = pytest.mark.integration

runner = CliRunner()


def sample_events(count: int, prefix: str) -> list[Envelope]:
    """A mix of event types on several streams."""
    events = []
    for i in range(count):
        job = f"{prefix}_{i}"
        if i % 3 == 0:
            events.append(
                Envelope(
                    type="job.rejected",
                    producer="registry",
                    actor="system:registry",
                    subject=job,
                    payload={"job_id": job, "stage": "intake", "reasons": [f"reason {i}"]},
                )
            )
        elif i % 3 == 1:
            events.append(
                Envelope(
                    type="training.cancel.requested",
                    producer="registry",
                    actor="alice",
                    subject=job,
                    payload={"job_id": job, "reason": "changed my mind"},
                )
            )
        else:
            events.append(
                Envelope(
                    type="training.failed",
                    producer="trainer",
                    actor="system:trainer",
                    subject=job,
                    payload={"job_id": job, "reason": "out of memory", "step": i},
                )
            )
    return events


def publish(url: str, envelopes: list[Envelope]) -> None:
    """Pipelined, each event signed by its producer's key in the test home."""
    signed = [sign(envelope) for envelope in envelopes]

    async def run() -> None:
        async with Publisher(url, keys().signer("registry")) as publisher:
            await publisher.publish_many(signed)

    asyncio.run(run())


def signed_size(settings: Settings) -> int:
    store = open_store(settings, create=False)
    try:
        if not store.has_schema():
            return 0
        with store.read() as conn:
            head = store.latest_head(conn)
            return head.tree_size if head else 0
    finally:
        store.db.dispose()


def entry_count(settings: Settings) -> int:
    store = open_store(settings, create=False)
    try:
        if not store.has_schema():
            return 0
        with store.read() as conn:
            return store.count_entries(conn)
    finally:
        store.db.dispose()


def cli(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"TUNEGATE_HOME": str(home)})
    return result.exit_code, result.output


def edit_bypassing_triggers(settings: Settings, statement: str) -> None:
    """What an insider with the database's credentials can do: switch the append-only triggers off (SQLite:
    drop them from the file; PostgreSQL: disable them, as the table's owner may) and change a row."""
    url = settings.database_url_for("audit")
    conn: Any
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
    else:
        import psycopg

        conn = psycopg.connect(url)
        conn.execute("ALTER TABLE audit_entries DISABLE TRIGGER USER")
    conn.execute(statement)
    conn.commit()
    conn.close()


def test_every_event_once_signed_and_verifiable_then_tamper_is_named(tunegate_home: Path, redis_url: str) -> None:
    settings = Settings(home=tunegate_home)
    audit = ServiceProcess("services.audit", tunegate_home, redis_url)
    try:
        audit.wait_ready()
        events = sample_events(150, "job")
        publish(redis_url, events)
        publish(redis_url, events[:40])  # duplicates: redelivery must not add entries
        wait_for(lambda: signed_size(settings) >= 150, 60, "150 signed entries")
        assert entry_count(settings) == 150

        code, out = cli(tunegate_home, "audit", "verify", "--json")
        assert code == 0, out
        report = json.loads(out)
        assert report["ok"] is True and report["entries_checked"] == 150 and report["unsigned_entries"] == 0

        code, out = cli(tunegate_home, "audit", "proof", events[7].event_id, "--out", str(tunegate_home / "p.json"))
        assert code == 0, out
        code, out = cli(
            tunegate_home,
            "audit",
            "verify-proof",
            str(tunegate_home / "p.json"),
            "--public-key",
            str(tunegate_home / "keys" / "audit_ed25519.pub"),
        )
        assert code == 0, out
        # The entry records who said it: the producer and its signature over exactly this envelope.
        recorded = json.loads((tunegate_home / "p.json").read_text())["entry"]
        expected = sign(events[7]).signature
        assert expected is not None
        assert recorded["producer"] == "registry"
        assert recorded["signature"] == expected.model_dump()

        checkpoint = tunegate_home / "trusted.checkpoint"
        code, out = cli(tunegate_home, "audit", "checkpoint", "--out", str(checkpoint))
        assert code == 0, out
        code, out = cli(tunegate_home, "audit", "verify", "--trusted-checkpoint", str(checkpoint))
        assert code == 0 and "extends the trusted checkpoint of size 150" in out, out
    finally:
        audit.stop()

    # An insider edits the database directly, bypassing the append-only triggers.
    edit_bypassing_triggers(settings, "UPDATE audit_entries SET actor = 'mallory' WHERE sequence = 57")
    code, out = cli(tunegate_home, "audit", "verify", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["first_bad_sequence"] == 57
    assert report["problem"] == "entry_hash_mismatch"


def test_redis_crash_mid_ingest_loses_nothing(tunegate_home: Path, redis_server: EmbeddedRedis) -> None:
    settings = Settings(home=tunegate_home)
    url = redis_server.url
    audit = ServiceProcess("services.audit", tunegate_home, url)
    try:
        audit.wait_ready()
        first = sample_events(120, "before")
        publish(url, first)
        wait_for(lambda: entry_count(settings) >= 1, 30, "ingest started")
        redis_server.kill()
        redis_server.start()
        second = sample_events(120, "after")
        publish(url, second)
        wait_for(lambda: signed_size(settings) >= 240, 90, "all 240 entries signed")
        assert entry_count(settings) == 240
        code, out = cli(tunegate_home, "audit", "verify")
        assert code == 0, out
    finally:
        audit.stop()


def test_up_status_down_manage_exactly_their_processes(tunegate_home: Path) -> None:
    env = {"TUNEGATE_HOME": str(tunegate_home), "TUNEGATE_REDIS_URL": ""}
    os.environ.pop("TUNEGATE_REDIS_URL", None)
    result = runner.invoke(app, ["up", "--service", "audit"], env=env)
    try:
        assert result.exit_code == 0, result.output
        status = runner.invoke(app, ["status", "--json"], env=env)
        assert status.exit_code == 0, status.output
        report = json.loads(status.output)
        assert report["redis"]["reachable"] is True and report["redis"]["embedded"] is True
        audit = report["services"]["audit"]
        assert audit["alive"] and audit["ready"] and len(audit["replicas"]) == 1
        assert set(audit["lag"]) == {s for s in report["streams"]}
        assert audit["dead_letters"] == 0
        assert (tunegate_home / "redis" / "appendonlydir").exists() or list((tunegate_home / "redis").glob("*.aof*"))
    finally:
        down = runner.invoke(app, ["down"], env=env)
    assert down.exit_code == 0, down.output
    assert "audit" in down.output and "redis" in down.output
    after = runner.invoke(app, ["status", "--json"], env=env)
    assert after.exit_code == 1, "Redis is gone: status must say unhealthy"
    report = json.loads(after.output)
    assert report["services"]["audit"]["alive"] is False and report["healthy"] is False
