"""Who submitted a job: the registry takes the requester from the principal whose registered key signed
job.requested, and refuses anything else: unsigned, unknown, forged, tampered, revoked, wrong role, retired
key, or a requester that is not the signer. (The bus refuses most of these before the handler runs, see
tests/bus; the registry checks again and records its refusal as job.rejected at stage `submission`.) The
bypass "an approver submits as requester someone-else and approves alone" is closed."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.registry.adapters import repository
from services.registry.domain.principals import hash_token
from shared.events.envelope import Envelope
from shared.security.signing import EnvelopeSigner, principal_identity
from tests.registry.registry_support import World, job_requested, make_spec, new_signing_key

pytestmark = pytest.mark.anyio


async def refused(world: World, envelope: Envelope, match: str) -> None:
    emitted = await world.runtime.deliver(world.handlers, envelope)
    with world.runtime.db.transaction() as session:
        assert repository.load_job(session, envelope.subject) is None, "a refused request leaves no job"
    assert [e.type for e in emitted] == ["job.rejected"], "only its refusal is recorded"
    rejection = emitted[0].data
    assert rejection.stage == "submission" and re.search(match, rejection.reasons[0]), rejection.reasons  # type: ignore[attr-defined]
    world.runtime.published.clear()


async def test_signed_submission_records_the_signer_as_requester(world: World) -> None:
    world.principal("alice", "requester")
    emitted = await world.runtime.deliver(world.handlers, world.signed(job_requested("job_1", make_spec())))
    assert world.state() == "scanning"
    history = world.get("/jobs/job_1").json()["history"]
    assert history[0]["actor"] == "alice"
    changes = [e.event_id for e in emitted if e.type == "job.state_changed"]
    assert [h["event_id"] for h in history] == changes, "each stored transition names its announcing event"


async def test_unsigned_and_unknown_principals_are_refused(world: World) -> None:
    world.principal("alice", "requester")
    plain = job_requested("job_1", make_spec()).model_copy(update={"producer": "cli"})
    await refused(world, plain, "producer 'cli' is not a principal")
    unsigned = job_requested("job_1", make_spec())
    await refused(world, unsigned, "unsigned envelope from 'principal:alice'")
    stranger_key = Ed25519PrivateKey.generate()
    stranger = EnvelopeSigner(principal_identity("mallory"), stranger_key).sign(
        job_requested("job_1", make_spec("mallory"))
    )
    await refused(world, stranger, "principal 'mallory' is unknown")


async def test_forged_tampered_and_wrong_key_signatures_are_refused(world: World) -> None:
    world.principal("alice", "requester")
    forger = Ed25519PrivateKey.generate()
    forged = EnvelopeSigner(principal_identity("alice"), forger).sign(job_requested("job_1", make_spec()))
    await refused(world, forged, "is not a known key of 'principal:alice'")
    genuine = world.signed(job_requested("job_1", make_spec()))
    tampered = genuine.model_copy(
        update={"payload": {**genuine.payload, "spec": {**genuine.payload["spec"], "base_model": "other"}}}
    )
    await refused(world, tampered, "does not match the envelope")
    world.principal("bob", "requester")
    bobs_key_for_alice = EnvelopeSigner(principal_identity("alice"), world.keys["bob"]).sign(
        job_requested("job_1", make_spec())
    )
    await refused(world, bobs_key_for_alice, "is not a known key of 'principal:alice'")


async def test_revoked_wrong_role_and_retired_keys_are_refused(world: World) -> None:
    world.principal("alice", "requester")
    world.principal("ann", "approver", signing=True)
    await refused(
        world,
        world.signed(job_requested("job_1", make_spec("ann"))),
        "submitting a job needs one of the roles 'requester', 'admin'",
    )
    old_key = world.keys["alice"]
    with world.runtime.db.transaction() as session:
        alice = repository.require_principal(session, "alice")
    new_private, new_key = new_signing_key(world.clock() + timedelta(seconds=1))
    alice.rotate(token_sha256=hash_token("tg_new"), key=new_key, by="root", now=world.clock())
    await world.commit(alice)
    world.runtime.published.clear()
    retired = EnvelopeSigner(principal_identity("alice"), old_key).sign(job_requested("job_1", make_spec()))
    await refused(world, retired, "was retired by a rotation; sign with its current key")
    world.keys["alice"] = new_private
    alice.revoke(by="root", reason="left", now=world.clock())
    await world.commit(alice)
    world.runtime.published.clear()
    await refused(world, world.signed(job_requested("job_1", make_spec())), "token of principal 'alice' was revoked")


async def test_requester_and_actor_must_be_the_signer(world: World) -> None:
    world.principal("alice", "requester")
    other_actor = job_requested("job_1", make_spec()).model_copy(update={"actor": "someone-else"})
    await refused(world, world.signed(other_actor, "alice"), "actor 'someone-else' differs from the signing principal")
    other_requester = job_requested("job_1", make_spec("someone-else"), as_="alice")
    await refused(
        world, world.signed(other_requester), "spec.requester 'someone-else' differs from the signing principal 'alice'"
    )


async def test_an_approver_cannot_submit_for_someone_else_and_approve_alone(world: World) -> None:
    """The bypass found in a hostile test: an approver put `requester: someone-else` in the job file and
    approved the job alone. Now the requester is the signer: submitting as someone else fails, and
    submitting as oneself makes one the requester, who cannot approve."""
    token = world.principal("bob", "approver", "requester")
    as_someone_else = job_requested("job_1", make_spec("someone-else"), as_="bob")
    await refused(world, world.signed(as_someone_else), "spec.requester 'someone-else' differs")
    await world.runtime.deliver(world.handlers, world.signed(job_requested("job_1", make_spec("bob"))))
    await world.scanned()
    own = world.decide("job_1", token, decision="approve", comment="mine")
    assert own.status_code == 403 and "separation of duties: 'bob' requested job job_1" in own.json()["detail"]
    assert world.runtime.of_type("training.requested") == []
    assert world.state() == "awaiting_approval"
