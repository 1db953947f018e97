"""The Job aggregate on its own: every transition records its StateChanged (same event id as the stored
transition), separation of duties, N distinct approvers, expiry, cancel; no database, no bus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.evaluator.suites.registry import suite_names
from services.registry.adapters.outbox import TO_WIRE, to_wire
from services.registry.adapters.policy_file import load_policy
from services.registry.domain import events
from services.registry.domain.errors import Conflict, Forbidden, InvalidRequest
from services.registry.domain.governance import Governance
from services.registry.domain.job import Job, ScanResult
from services.registry.domain.policy import RiskRuleRegistry
from services.registry.domain.principals import Principal
from services.registry.domain.states import InvalidTransition, JobState
from tests.registry.registry_support import FULL_SCAN, make_spec, sha

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
GOVERNANCE = Governance(
    policy=load_policy(),
    rules=RiskRuleRegistry.default(),
    approval_ttl_s=3600.0,
    evaluation_suites=frozenset(suite_names()),
)


def person(name: str, *roles: str) -> Principal:
    return Principal(name=name, roles=list(roles), token_sha256=sha(name), created_at=NOW, created_by="test")


def new_job(**use_case: object) -> Job:
    spec = make_spec(**use_case)
    return Job.request(
        job_id="job_1", spec=spec, requester="alice", intake=GOVERNANCE.intake(spec, base_is_directory=False), now=NOW
    )


def clean_scan(detectors: dict[str, object] | None = FULL_SCAN) -> ScanResult:
    dataset = {"uri": "file:///data/train.jsonl", "sha256": sha("source")}
    summary = {"verdict": "clean", "detectors": detectors}
    return ScanResult("clean", sha("source"), dataset, sha("fingerprint"), [], summary)


def waiting_job(detectors: dict[str, object] | None = FULL_SCAN, **use_case: object) -> Job:
    job = new_job(**use_case)
    job.record_scan(clean_scan(detectors), now=NOW, approval_ttl=timedelta(hours=1))
    job.pull_events()
    return job


def test_every_transition_has_its_state_changed_with_the_same_event_id() -> None:
    replay = new_job()
    recorded = replay.pull_events()
    replay.record_scan(clean_scan(), now=NOW, approval_ttl=timedelta(hours=1))
    replay.decide(person("bob", "approver"), "approve", now=NOW)
    replay.finish_training(JobState.TRAINED, reason="done", now=NOW)
    recorded += replay.pull_events()
    changes = [e for e in recorded if isinstance(e, events.StateChanged)]
    assert [(c.from_state, c.to_state) for c in changes] == [(t.from_state, t.to_state) for t in replay.transitions]
    assert [c.event_id for c in changes] == [t.event_id for t in replay.transitions]
    assert replay.state == JobState.TRAINED


def test_every_domain_event_has_a_wire_translation() -> None:
    assert set(TO_WIRE) == {
        cls
        for cls in vars(events).values()
        if isinstance(cls, type) and issubclass(cls, events.DomainEvent) and cls is not events.DomainEvent
    }
    event_type, payload = to_wire(
        events.StateChanged(subject="job_1", actor="x", from_state=None, to_state="requested", reason="")
    )
    assert (event_type, payload.model_dump()["to_state"]) == ("job.state_changed", "requested")


def test_rejected_intake_records_state_and_reasons() -> None:
    job = new_job(problem="")
    recorded = job.pull_events()
    assert job.state == JobState.REJECTED
    assert [type(e).__name__ for e in recorded] == ["StateChanged", "StateChanged", "JobRejected"]
    assert "use_case.problem" in job.rejection_reasons[0]


def test_separation_of_duties_and_n_distinct_approvers() -> None:
    job = waiting_job(domain="employment")
    with pytest.raises(Forbidden, match="separation of duties: 'alice' requested job job_1"):
        job.decide(person("alice", "approver"), "approve", now=NOW)
    first = job.decide(person("bob", "approver"), "approve", now=NOW)
    assert (first.approvals_so_far, first.required_approvals, job.state) == (1, 2, JobState.AWAITING_APPROVAL)
    with pytest.raises(Conflict, match="already decided"):
        job.decide(person("bob", "approver"), "approve", now=NOW)
    second = job.decide(person("carol", "approver"), "approve", now=NOW)
    assert second.training_requested and job.state == JobState.TRAINING
    (training,) = [e for e in job.pull_events() if isinstance(e, events.TrainingRequested)]
    assert training.approvers == ["bob", "carol"] and training.seed == 3


@pytest.mark.parametrize("detectors", [{**FULL_SCAN, "ner": False}, None], ids=["ner-off", "not-said"])
def test_a_high_risk_job_is_never_approved_on_a_scan_without_ner(detectors: dict[str, object] | None) -> None:
    job = waiting_job(detectors, domain="employment")
    with pytest.raises(Conflict, match=r"job job_1 is high-risk and its dataset was scanned without NER .*"
                       r"rescan with NER before approval"):
        job.decide(person("bob", "approver"), "approve", now=NOW)
    assert job.approvals == [] and job.pull_events() == [] and job.state == JobState.AWAITING_APPROVAL
    # Rejecting stays possible, and a lower tier is approved on the same scan (NER off is declared, not hidden).
    job.decide(person("bob", "approver"), "reject", reason="rescan with NER first", now=NOW)
    assert job.state == JobState.REJECTED
    minimal = waiting_job(detectors)
    assert minimal.decide(person("bob", "approver"), "approve", now=NOW).training_requested


def test_a_rejection_needs_a_reason_and_a_late_decision_expires_the_job() -> None:
    job = waiting_job()
    with pytest.raises(InvalidRequest, match="non-empty reason"):
        job.decide(person("bob", "approver"), "reject", reason=" ", now=NOW)
    late = job.decide(person("bob", "approver"), "approve", now=NOW + timedelta(hours=2))
    assert late.expired and job.state == JobState.EXPIRED
    assert any(isinstance(e, events.ApprovalExpired) for e in job.pull_events())


def test_cancel_before_and_during_training() -> None:
    alice, admin, bob = person("alice", "requester"), person("root", "admin"), person("bob", "requester")
    job = waiting_job()
    with pytest.raises(Forbidden, match="only its requester or an admin"):
        job.cancel(bob, reason="", now=NOW)
    assert job.cancel(alice, reason="changed my mind", now=NOW) is True
    assert job.state == JobState.CANCELLED
    assert job.transitions[-1].reason == "cancelled by alice: changed my mind"
    late = job.record_scan(clean_scan(), now=NOW, approval_ttl=timedelta(hours=1))
    assert late is False and job.state == JobState.CANCELLED

    training = waiting_job()
    training.decide(person("bob", "approver"), "approve", now=NOW)
    training.pull_events()
    assert training.cancel(admin, reason="", now=NOW) is False
    assert training.state == JobState.TRAINING
    (asked,) = training.pull_events()
    assert isinstance(asked, events.TrainingCancelRequested) and asked.actor == "root"
    with pytest.raises(Conflict, match="already requested by root"):
        training.cancel(alice, reason="", now=NOW)
    training.finish_training(JobState.CANCELLED, reason="stopped at step 3", now=NOW)
    assert training.state == JobState.CANCELLED
    with pytest.raises(InvalidTransition, match="it is a final state"):
        training.cancel(alice, reason="", now=NOW)
