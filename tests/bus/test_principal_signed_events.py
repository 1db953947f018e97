"""Events that people and upstream systems publish are signed with the principal's key. A consumer that
does not own the principals (the audit ledger) learns their keys from the registry's signed principal.*
events and refuses anything signed by a principal it does not know, or by a revoked one."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.events.envelope import Envelope
from shared.events.payloads import PrincipalCreated, PrincipalRevoked
from shared.security.keys import key_id_for, public_key_raw
from shared.security.signing import EnvelopeSigner, principal_identity
from tests.support import ServiceProcess, publish_signed, read_stream, wait_for

pytestmark = pytest.mark.integration


def job_requested(principal: str, job_id: str) -> Envelope:
    spec = {
        "requester": principal,
        "use_case": {"name": "triage"},
        "base_model": "tiny",
        "dataset": {"uri": "cas://sha256/" + "a" * 64},
    }
    return Envelope(
        type="job.requested",
        producer=principal_identity(principal),
        actor=principal,
        subject=job_id,
        payload={"job_id": job_id, "spec": spec},
    )


def principal_event(event_type: str, payload: object, name: str) -> Envelope:
    return Envelope(
        type=event_type,
        producer="registry",
        actor="admin",
        subject=f"principal:{name}",
        payload=payload.model_dump(mode="json"),  # type: ignore[attr-defined]
    )


def ledger_types(home: Path) -> list[tuple[str, str]]:
    from services.audit.application import open_store
    from shared.config import Settings

    store = open_store(Settings(home=home), create=False)
    try:
        if not store.has_schema():
            return []
        with store.read() as conn:
            return [(row.type, row.subject) for rows in store.iter_rows(conn) for row in rows]
    finally:
        store.db.dispose()


def test_the_ledger_accepts_known_principals_only(tunegate_home: Path, redis_url: str) -> None:
    alice_key = Ed25519PrivateKey.generate()
    alice = EnvelopeSigner(principal_identity("alice"), alice_key)
    created = PrincipalCreated(
        name="alice",
        roles=["requester"],
        token_sha256="0" * 64,
        public_key=public_key_raw(alice_key.public_key()).hex(),
        key_id=key_id_for(alice_key.public_key()),
        created_by="admin",
    )
    audit = ServiceProcess("services.audit", tunegate_home, redis_url)
    try:
        audit.wait_ready()
        publish_signed(redis_url, principal_event("principal.created", created, "alice"))
        client = redis.Redis.from_url(redis_url)
        genuine = alice.sign(job_requested("alice", "job_alice"))
        client.xadd("tunegate.jobs", {"envelope": genuine.to_wire()})
        stranger = EnvelopeSigner(principal_identity("mallory"), Ed25519PrivateKey.generate())
        client.xadd("tunegate.jobs", {"envelope": stranger.sign(job_requested("mallory", "job_mallory")).to_wire()})
        impostor = EnvelopeSigner(principal_identity("alice"), Ed25519PrivateKey.generate())
        client.xadd("tunegate.jobs", {"envelope": impostor.sign(job_requested("alice", "job_impostor")).to_wire()})
        wait_for(lambda: len(read_stream(client, "tunegate.bus")) >= 2, 20, "two refusals recorded")
        revoked = PrincipalRevoked(name="alice", revoked_by="admin")
        publish_signed(redis_url, principal_event("principal.revoked", revoked, "alice"))
        client.xadd("tunegate.jobs", {"envelope": alice.sign(job_requested("alice", "job_after_revoke")).to_wire()})

        wait_for(lambda: len(read_stream(client, "tunegate.bus")) >= 3, 20, "three refusals recorded")
        recorded = wait_for(lambda: len(ledger_types(tunegate_home)) >= 6 and ledger_types(tunegate_home), 20, "ledger")
        jobs = [subject for kind, subject in recorded if kind == "job.requested"]
        assert jobs == ["job_alice"], "only the job signed by a known, unrevoked principal is recorded as such"
        assert [kind for kind, _ in recorded].count("bus.event.rejected") == 3
        reasons = [e.data.reason for e in read_stream(client, "tunegate.bus")]  # type: ignore[attr-defined]
        assert all("signature" in reason for reason in reasons), reasons
    finally:
        audit.stop()
