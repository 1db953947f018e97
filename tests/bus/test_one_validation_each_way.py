"""An event is validated once where it is emitted and once where it is received, and serialised once for
the wire (plus once for its signature on each side): no JSON round trips in between."""

from __future__ import annotations

import asyncio
from pathlib import Path
from unittest import mock

import pytest

from shared import canonical
from shared.bus.authentication import Authenticator
from shared.bus.inbox import inbox_tables
from shared.bus.unit_of_work import UnitOfWork
from shared.config import Settings
from shared.events import catalog
from shared.events.envelope import Envelope
from shared.events.payloads import JobAccepted, JobStateChanged
from shared.security import signing
from shared.security.signing import KeyDirectory
from shared.storage.db import Database


def test_emit_store_publish_receive_handle(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    keys = KeyDirectory(settings.keys_dir)
    signer = keys.signer("registry")
    db = Database(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    tables = inbox_tables("registry")
    tables.metadata.create_all(db.engine)
    wire: list[bytes] = []

    async def publish(envelope: Envelope) -> None:
        wire.append(envelope.to_wire())

    uow = UnitOfWork(
        service="registry",
        db=db,
        tables=tables,
        settings=settings,
        publish=publish,
        sign=signer.sign,
        may_emit=frozenset({"job.state_changed"}),
    )
    cause = Envelope(type="job.accepted", producer="registry", actor="a", subject="job_1",
                     payload=JobAccepted(job_id="job_1", risk_tier="minimal", tier_rule="r").model_dump())

    async def handler(event: JobAccepted, ctx: object) -> None:
        ctx.emit("job.state_changed", JobStateChanged(job_id=event.job_id, from_state="a", to_state="b"))  # type: ignore[attr-defined]

    validations = mock.patch.object(catalog, "typed_payload", wraps=catalog.typed_payload)
    dumps = mock.patch.object(Envelope, "model_dump_json", autospec=True, side_effect=Envelope.model_dump_json)
    canonicals = mock.patch.object(signing, "canonical_json", wraps=canonical.canonical_json)
    with validations as validated, dumps as dumped, canonicals as canonicalised:
        asyncio.run(uow.handle(handler, cause, keep_alive=lambda: asyncio.sleep(0)))
        assert (validated.call_count, dumped.call_count, canonicalised.call_count) == (1, 1, 1), (
            "emit: one validation, one signature, one wire serialisation shared by the outbox and the publish"
        )
        received = Envelope.from_wire(wire[0])
        Authenticator(keys).check(received)
        assert isinstance(received.data, JobStateChanged)
        assert (validated.call_count, dumped.call_count, canonicalised.call_count) == (2, 1, 2), (
            "receive: one validation, one canonical form for the signature check, no re-serialisation"
        )
    db.dispose()


@pytest.mark.parametrize("field", ["payload", "subject", "actor", "occurred_at"])
def test_a_signature_covers_every_field(tmp_path: Path, field: str) -> None:
    keys = KeyDirectory(tmp_path / "keys")
    signed = keys.signer("registry").sign(Envelope(
        type="job.state_changed", producer="registry", actor="a", subject="job_1",
        payload={"job_id": "job_1", "from_state": "a", "to_state": "b"}))
    changes = {
        "payload": {"job_id": "job_1", "from_state": "a", "to_state": "approved"},
        "subject": "job_2",
        "actor": "mallory",
        "occurred_at": signed.occurred_at.replace(year=2020),
    }
    altered = Envelope.model_validate(signed.model_dump() | {field: changes[field]})
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify_envelope(altered, keys.lookup)


def test_a_failed_unit_of_work_stages_and_publishes_nothing(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    db = Database(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    tables = inbox_tables("registry")
    tables.metadata.create_all(db.engine)
    sent: list[Envelope] = []

    async def publish(envelope: Envelope) -> None:
        sent.append(envelope)

    uow = UnitOfWork(service="registry", db=db, tables=tables, settings=settings, publish=publish,
                     sign=KeyDirectory(settings.keys_dir).signer("registry").sign,
                     may_emit=frozenset({"job.state_changed"}))
    change = JobStateChanged(job_id="job_1", from_state="a", to_state="b")

    async def failing() -> None:
        async with uow.transaction(actor="alice", subject="job_1") as ctx:
            ctx.emit("job.state_changed", change)
            raise RuntimeError("the request failed after emitting")

    async def succeeding() -> None:
        async with uow.transaction(actor="alice", subject="job_1") as ctx:
            ctx.emit("job.state_changed", change)

    with pytest.raises(RuntimeError):
        asyncio.run(failing())
    assert sent == []
    with db.transaction() as session:
        assert session.execute(tables.outbox.select()).all() == []
    asyncio.run(succeeding())
    assert [e.type for e in sent] == ["job.state_changed"] and sent[0].signature is not None
    db.dispose()
