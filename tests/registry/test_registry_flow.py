"""Event flow through the registry: intake, scan results, approvals (HTTP), expiry, training outcomes."""

from __future__ import annotations

import pytest

from services.registry.bootstrap import expire_overdue
from services.registry.domain.states import InvalidTransition
from shared.events.envelope import Envelope
from shared.events.payloads import ArtifactRef, ScanDetectors, TrainingCancelled, TrainingCompleted, TrainingFailed
from tests.registry.registry_support import FULL_SCAN, World, bearer, make_spec, sha

pytestmark = pytest.mark.anyio


def states_of(emitted: list[Envelope]) -> list[tuple[str | None, str]]:
    return [(e.payload["from_state"], e.payload["to_state"]) for e in emitted if e.type == "job.state_changed"]


async def test_accepted_job_moves_to_scanning_and_asks_for_a_scan(world: World) -> None:
    emitted = await world.submit(make_spec())
    assert [e.type for e in emitted] == [
        "job.state_changed",
        "job.state_changed",
        "job.accepted",
        "job.state_changed",
        "dataset.scan.requested",
    ]
    assert states_of(emitted) == [(None, "requested"), ("requested", "accepted"), ("accepted", "scanning")]
    assert all(e.subject == "job_1" for e in emitted)
    assert emitted[0].actor == "alice" and emitted[1].actor == "system:registry"
    accepted = emitted[2].payload
    assert (accepted["risk_tier"], accepted["tier_rule"], accepted["licence_id"]) == (
        "minimal",
        "default:minimal",
        "Apache-2.0",
    )
    assert accepted["advice"]["verdict"] == "fine_tuning_fits"
    assert emitted[4].payload["dataset"]["uri"] == "file:///data/train.jsonl"
    assert world.state() == "scanning"


async def test_incomplete_justification_rejects_with_field_names(world: World) -> None:
    emitted = await world.submit(make_spec(why_not_prompting="", data_description=""))
    assert [e.type for e in emitted] == ["job.state_changed", "job.state_changed", "job.rejected"]
    rejected = emitted[-1].payload
    assert rejected["stage"] == "intake"
    assert "use_case.why_not_prompting, use_case.data_description" in rejected["reasons"][0]
    assert world.state() == "rejected"
    view = world.get("/jobs/job_1").json()
    assert view["rejection_reasons"] == rejected["reasons"]
    assert [h["to_state"] for h in view["history"]] == ["requested", "rejected"]


async def test_prohibited_practice_is_rejected_with_the_rule(world: World) -> None:
    emitted = await world.submit(make_spec(practices=["social_scoring"]))
    reasons = emitted[-1].payload["reasons"]
    assert emitted[-1].type == "job.rejected"
    assert "prohibited by EU AI Act Art. 5 (rule prohibited_practice:social_scoring)" in reasons[0]
    view = world.get("/jobs/job_1").json()
    assert (view["risk_tier"], view["tier_rule"]) == ("prohibited", "prohibited_practice:social_scoring")


async def test_duplicate_job_id_is_refused_without_touching_the_first(world: World) -> None:
    await world.submit(make_spec())
    before = world.get("/jobs/job_1").json()
    emitted = await world.submit(make_spec(name="other"))
    assert [e.type for e in emitted] == ["job.rejected"]
    assert emitted[0].payload["stage"] == "submission"
    assert "job id job_1 is already registered" in emitted[0].payload["reasons"][0]
    assert "existing job is unchanged" in emitted[0].payload["reasons"][0]
    after = world.get("/jobs/job_1").json()
    assert after == before and after["use_case"] == "ticket-triage"


async def test_blocked_scan_rejects_with_the_scanners_reasons(world: World) -> None:
    await world.submit(make_spec())
    emitted = await world.scanned(verdict="blocked", blocking_reasons=["special category data: HEALTH x4"])
    assert states_of(emitted) == [("scanning", "blocked")]
    assert emitted[-1].type == "job.rejected"
    assert emitted[-1].payload == {
        "job_id": "job_1",
        "stage": "scan",
        "reasons": ["special category data: HEALTH x4"],
    }


async def test_scan_of_other_bytes_than_submitted_blocks(world: World) -> None:
    spec = make_spec()
    spec = spec.model_copy(update={"dataset": spec.dataset.model_copy(update={"sha256": sha("declared")})})
    await world.submit(spec)
    emitted = await world.scanned(verdict="clean")
    assert world.state() == "blocked"
    assert "the scanned source has sha256" in emitted[-1].payload["reasons"][0]


async def test_scan_failure_blocks(world: World) -> None:
    await world.submit(make_spec())
    envelope = Envelope(
        type="dataset.scan.failed",
        producer="scanner",
        actor="system:scanner",
        subject="job_1",
        payload={"job_id": "job_1", "reasons": ["unreadable line 7"]},
    )
    emitted = await world.runtime.deliver(world.handlers, envelope)
    assert world.state() == "blocked"
    assert emitted[-1].payload["reasons"] == ["dataset scan failed: unreadable line 7"]


async def test_clean_scan_asks_for_one_approval_with_summary_and_advice(world: World) -> None:
    await world.submit(make_spec())
    emitted = await world.scanned()
    request = world.runtime.of_type("approval.requested")[0].payload
    assert states_of(emitted) == [("scanning", "awaiting_approval")]
    assert request["required_approvals"] == 1
    assert request["advice"]["verdict"] == "fine_tuning_fits"
    assert request["scan_summary"]["totals"] == {"EMAIL_ADDRESS": {"redacted": 12}}
    assert request["expires_at"] == "2026-01-05T10:00:00+00:00"  # clock + approval_ttl_s (3600 s)


async def test_single_approval_requests_training_with_the_redacted_dataset(world: World) -> None:
    bob = world.principal("bob", "approver")
    await world.submit(make_spec())
    await world.scanned(verdict="redacted")
    response = world.decide("job_1", bob, decision="approve", comment="looks fine")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["state"], body["approvals_so_far"], body["training_requested"]) == ("training", 1, True)
    granted = world.runtime.of_type("approval.granted")
    assert [(g.actor, g.payload["approvals_so_far"]) for g in granted] == [("bob", 1)]
    (training,) = world.runtime.of_type("training.requested")
    assert training.subject == "job_1"
    assert training.payload["dataset"]["sha256"] == sha("redacted")
    assert training.payload["fingerprint"] == sha("fingerprint")
    assert training.payload["scan_verdict"] == "redacted"
    assert (training.payload["seed"], training.payload["approvers"]) == (3, ["bob"])
    assert training.payload["hyperparameters"] == {"max_steps": 10}, "the seed travels apart"
    history = world.get("/jobs/job_1").json()["history"]
    assert [(h["to_state"], h["actor"]) for h in history][-2:] == [("approved", "bob"), ("training", "system:registry")]


async def test_requester_can_never_approve_their_own_job(world: World) -> None:
    alice = world.principal("alice", "requester", "approver")
    await world.submit(make_spec())
    await world.scanned()
    response = world.decide("job_1", alice, decision="approve", comment="mine")
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "detail": "separation of duties: 'alice' requested job job_1 and cannot approve it",
    }
    assert world.state() == "awaiting_approval"
    assert world.runtime.of_type("approval.granted") == []


async def test_high_risk_needs_two_distinct_approvers(world: World) -> None:
    bob, carol = world.principal("bob", "approver"), world.principal("carol", "approver")
    await world.submit(make_spec(domain="employment"))
    await world.scanned()
    assert world.runtime.of_type("approval.requested")[0].payload["required_approvals"] == 2
    first = world.decide("job_1", bob, decision="approve")
    assert (first.status_code, first.json()["state"], first.json()["training_requested"]) == (
        200,
        "awaiting_approval",
        False,
    )
    again = world.decide("job_1", bob, decision="approve")
    assert again.status_code == 409 and "already decided" in again.json()["detail"]
    assert world.runtime.of_type("training.requested") == []
    second = world.decide("job_1", carol, decision="approve")
    assert second.json()["state"] == "training"
    assert world.runtime.of_type("training.requested")[0].payload["approvers"] == ["bob", "carol"]
    assert [g.payload["approvals_so_far"] for g in world.runtime.of_type("approval.granted")] == [1, 2]


async def test_high_risk_approval_is_refused_on_a_scan_without_ner(world: World) -> None:
    bob = world.principal("bob", "approver")
    await world.submit(make_spec(domain="employment"))
    await world.scanned(detectors=ScanDetectors.model_validate({**FULL_SCAN, "ner": False, "ner_model": None}))
    summary = world.runtime.of_type("approval.requested")[0].payload["scan_summary"]
    assert summary["detectors"]["ner"] is False  # recorded in the job's scan summary, shown to approvers
    refused = world.decide("job_1", bob, decision="approve", comment="ok")
    assert (refused.status_code, refused.json()["error"]) == (409, "conflict")
    assert refused.json()["detail"].startswith("job job_1 is high-risk and its dataset was scanned without NER")
    assert world.state() == "awaiting_approval" and world.runtime.of_type("approval.granted") == []


async def test_prefer_rag_advice_needs_an_override_comment(world: World) -> None:
    bob = world.principal("bob", "approver")
    await world.submit(make_spec(needs_citations=True))
    await world.scanned()
    refused = world.decide("job_1", bob, decision="approve")
    assert refused.status_code == 422
    assert "override comment" in refused.json()["detail"] and "prefer_rag" in refused.json()["detail"]
    assert world.state() == "awaiting_approval"
    ok = world.decide("job_1", bob, decision="approve", comment="citations come from the UI layer")
    assert ok.json()["override"] is True
    assert world.runtime.of_type("approval.granted")[0].payload["override"] is True


async def test_rejection_needs_a_reason_and_ends_the_job(world: World) -> None:
    bob = world.principal("bob", "approver")
    await world.submit(make_spec())
    await world.scanned()
    missing = world.decide("job_1", bob, decision="reject")
    assert missing.status_code == 422 and "reason" in missing.json()["detail"]
    done = world.decide("job_1", bob, decision="reject", reason="dataset owner not consulted")
    assert done.json()["state"] == "rejected"
    assert world.runtime.of_type("approval.rejected")[0].payload["reason"] == "dataset owner not consulted"
    assert world.runtime.of_type("job.rejected")[0].payload["stage"] == "approval"


async def test_approval_expires_by_timer(world: World) -> None:
    await world.submit(make_spec())
    await world.scanned()
    world.clock.advance(3599)
    assert await expire_overdue(world.runtime, world.governance) == []
    world.clock.advance(1)
    assert await expire_overdue(world.runtime, world.governance) == ["job_1"]
    assert world.state() == "expired"
    (expired,) = world.runtime.of_type("approval.expired")
    assert expired.payload["requested_at"] == "2026-01-05T09:00:00+00:00"
    assert await expire_overdue(world.runtime, world.governance) == []


async def test_late_approval_expires_the_job_instead(world: World) -> None:
    bob = world.principal("bob", "approver")
    await world.submit(make_spec())
    await world.scanned()
    world.clock.advance(7200)
    late = world.decide("job_1", bob, decision="approve")
    assert late.status_code == 409 and late.json()["error"] == "approval_expired"
    assert world.state() == "expired"
    assert world.runtime.of_type("training.requested") == []
    assert len(world.runtime.of_type("approval.expired")) == 1


async def test_approving_a_job_not_awaiting_approval_names_its_state(world: World) -> None:
    bob = world.principal("bob", "approver")
    await world.submit(make_spec())
    response = world.decide("job_1", bob, decision="approve")
    assert response.status_code == 409
    assert response.json() == {
        "error": "invalid_transition",
        "detail": "job job_1 is in state 'scanning'; cannot move to 'approved' "
        "(allowed next states: awaiting_approval, blocked, cancelled)",
    }


async def test_out_of_order_event_raises_with_the_current_state(world: World) -> None:
    await world.submit(make_spec())
    event = Envelope(
        type="training.failed",
        producer="trainer",
        actor="system:trainer",
        subject="job_1",
        payload=TrainingFailed(job_id="job_1", reason="oom").model_dump(mode="json"),
    )
    with pytest.raises(InvalidTransition, match="is in state 'scanning'; cannot move to 'failed'"):
        await world.runtime.deliver(world.handlers, event)
    assert world.state() == "scanning"


async def test_events_for_unknown_jobs_are_skipped(world: World) -> None:
    event = Envelope(
        type="training.failed",
        producer="trainer",
        actor="system:trainer",
        subject="job_x",
        payload=TrainingFailed(job_id="job_x", reason="oom").model_dump(mode="json"),
    )
    assert await world.runtime.deliver(world.handlers, event) == []


async def test_training_outcomes_end_the_job(world: World) -> None:
    bob = world.principal("bob", "approver")
    await world.submit(make_spec())
    await world.scanned()
    world.decide("job_1", bob, decision="approve")
    completed = TrainingCompleted(
        job_id="job_1",
        artifact=ArtifactRef(uri="cas://sha256/" + sha("adapter"), sha256=sha("adapter")),
        base_model="tiny",
        method=make_spec().method,
        data_fingerprint=sha("fingerprint"),
        metrics={"train_loss": 0.5},
    )
    event = Envelope(
        type="training.completed",
        producer="trainer",
        actor="system:trainer",
        subject="job_1",
        payload=completed.model_dump(mode="json"),
    )
    emitted = await world.runtime.deliver(world.handlers, event)
    assert states_of(emitted) == [("training", "trained")]
    view = world.get("/jobs/job_1").json()
    assert view["training_result"]["metrics"] == {"train_loss": 0.5}
    assert [h["to_state"] for h in view["history"]] == [
        "requested",
        "accepted",
        "scanning",
        "awaiting_approval",
        "approved",
        "training",
        "trained",
    ]
    assert all(h["event_id"] for h in view["history"])


async def test_cancel_before_training_ends_the_job_and_a_late_scan_changes_nothing(world: World) -> None:
    alice, carl = world.principal("alice", "requester"), world.principal("carl", "requester")
    await world.submit(make_spec())
    other = world.client.post("/jobs/job_1/cancel", json={"reason": "not mine"}, headers=bearer(carl))
    assert other.status_code == 403 and "only its requester or an admin" in other.json()["detail"]
    done = world.client.post("/jobs/job_1/cancel", json={"reason": "wrong data"}, headers=bearer(alice))
    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["training_cancel_requested"]) == ("cancelled", False)
    (change,) = [e for e in world.runtime.of_type("job.state_changed") if e.payload["to_state"] == "cancelled"]
    assert (change.actor, change.payload["reason"]) == ("alice", "cancelled by alice: wrong data")
    assert world.runtime.of_type("training.cancel.requested") == []
    late = await world.scanned()
    assert late == [] and world.state() == "cancelled"


async def test_cancel_during_training_asks_the_trainer_and_its_answer_ends_the_job(world: World) -> None:
    bob, admin = world.principal("bob", "approver"), world.admin()
    await world.submit(make_spec())
    await world.scanned()
    world.decide("job_1", bob, decision="approve")
    asked = world.client.post("/jobs/job_1/cancel", json={}, headers=bearer(admin))
    assert asked.status_code == 200 and asked.json()["training_cancel_requested"] is True
    assert asked.json()["job"]["cancel_requested_by"] == "root"
    (cancel,) = world.runtime.of_type("training.cancel.requested")
    assert (cancel.subject, cancel.actor, cancel.payload) == (
        "job_1",
        "root",
        {"job_id": "job_1", "reason": "no reason given"},
    )
    assert world.state() == "training"
    event = Envelope(
        type="training.cancelled",
        producer="trainer",
        actor="system:trainer",
        subject="job_1",
        payload=TrainingCancelled(job_id="job_1", at_step=3, reason="asked by root").model_dump(mode="json"),
    )
    emitted = await world.runtime.deliver(world.handlers, event)
    assert states_of(emitted) == [("training", "cancelled")]
    bad = world.client.post("/jobs/job_1/cancel", json={}, headers=bearer(admin))
    assert bad.status_code == 409 and "it is a final state" in bad.json()["detail"]
