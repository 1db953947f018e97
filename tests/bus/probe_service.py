"""A service used only by the bus integration tests: its handler can be slow, fail, or succeed, as the
event's payload says, and it records every effect in its own database so tests can count them."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, text
from sqlalchemy.exc import OperationalError

from shared.bus.context import HandlerContext
from shared.bus.definition import ServiceDefinition
from shared.bus.lifecycle import run_service
from shared.config import Settings
from shared.events.payloads import JobStateChanged
from shared.roster import ServiceSpec

metadata = MetaData()
effects = Table(
    "probe_effects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("job_id", String(64), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)


async def on_state_changed(data: JobStateChanged, ctx: HandlerContext) -> None:
    if data.reason.startswith("slow:"):
        seconds = float(data.reason.split(":", 1)[1])
        marker = ctx.settings.path("probe", f"started-{ctx.event.event_id}-{os.getpid()}")
        marker.write_text("started")
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
            await ctx.still_mine()
    if data.reason.startswith("sleepy:"):
        # A long handler that never calls still_mine(): the runtime must keep its entry alive anyway.
        ctx.settings.path("probe", f"started-{ctx.event.event_id}-{os.getpid()}-{os.urandom(4).hex()}").write_text("")
        await asyncio.sleep(float(data.reason.split(":", 1)[1]))
    if data.reason == "poison":
        raise ValueError(f"poison pill in job {data.job_id}")
    if data.reason.startswith("outage:"):
        # The database "unreachable" on the first N deliveries, as psycopg reports it through SQLAlchemy.
        attempts = ctx.settings.path("probe", f"attempts-{ctx.event.event_id}")
        attempts.parent.mkdir(parents=True, exist_ok=True)
        seen = len(attempts.read_text()) if attempts.exists() else 0
        attempts.write_text("x" * (seen + 1))
        if seen < int(data.reason.split(":", 1)[1]):
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection to server failed"))
    if data.reason == "missing-table":
        # A statement the database refuses: SQLAlchemy calls SQLite's "no such table" an OperationalError too,
        # yet it is the handler's bug, not an outage.
        ctx.db.execute(text("SELECT count(*) FROM no_such_table"))
    ctx.db.execute(
        insert(effects).values(event_id=ctx.event.event_id, job_id=data.job_id, pid=os.getpid(), at=datetime.now(UTC))
    )
    ctx.emit(
        "job.accepted",
        {"job_id": data.job_id, "risk_tier": "minimal", "tier_rule": "probe", "advice": {}},
    )


def build(settings: Settings) -> ServiceDefinition:
    return ServiceDefinition(
        name="probe",
        handlers={JobStateChanged: on_state_changed},
        metadata=[metadata],
        spec=ServiceSpec(
            name="probe",
            summary="test service",
            consumes=("job.state_changed",),
            emits=("job.accepted", "bus.event.rejected", "bus.event.dead_lettered"),
        ),
    )


if __name__ == "__main__":
    run_service(build)
