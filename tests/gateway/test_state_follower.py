"""Replicas of the gateway share one log of the events they follow: whichever replica handled an event,
every replica's follower applies the log in the order it was recorded, so all serve the same routes and keys
(a retirement handled by one replica stops the version on the others too)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from services.gateway.adapters import tables
from services.gateway.domain.routes import RouteNotFound
from services.gateway.domain.state import Change, GatewayState
from shared.events.model_versions import ModelRetired
from shared.storage.db import Database
from tests.gateway.test_routes import deployed


def replica(db_path: Path, changes: list[Change]) -> tables.StateFollower:
    db = Database(f"sqlite:///{db_path}")
    tables.metadata.create_all(db.engine)
    return tables.StateFollower(db, GatewayState(), changes.append)


def handle(follower: tables.StateFollower, event_type: str, payload: dict[str, object]) -> None:
    with follower.db.transaction() as session:
        tables.record(session, str(uuid.uuid4()), event_type, payload)


def test_every_replica_applies_what_any_replica_recorded_in_order(tmp_path: Path) -> None:
    seen_a: list[Change] = []
    seen_b: list[Change] = []
    a, b = replica(tmp_path / "gw.sqlite3", seen_a), replica(tmp_path / "gw.sqlite3", seen_b)
    handle(a, "model.deployed", deployed("triage.v1", alias="triage"))
    handle(b, "model.retired", ModelRetired(version_id="triage.v1", reason="x", alias="triage").model_dump(mode="json"))
    handle(a, "model.deployed", deployed("triage.v2", alias="triage"))
    for follower in (a, b):
        follower.catch_up()
        assert follower.state.routes.resolve("triage", "acme").served_name == "triage.v2"
        try:
            follower.state.routes.resolve("triage.v1", "acme")
            raise AssertionError("a retired version still resolves")
        except RouteNotFound:
            pass
    assert a.position == b.position == 3
    assert a.catch_up() == []  # nothing new: nothing applied twice


def test_a_woken_follower_applies_at_once_and_reports_the_change(tmp_path: Path) -> None:
    changes: list[Change] = []
    follower = replica(tmp_path / "gw.sqlite3", changes)

    async def scenario() -> None:
        task = asyncio.create_task(follower.run())
        handle(follower, "model.deployed", deployed("triage.v1", alias="triage"))
        follower.wake()
        for _ in range(100):
            if changes:
                break
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(scenario())
    assert [r.version_id for c in changes for r in c.load] == ["triage.v1"]
