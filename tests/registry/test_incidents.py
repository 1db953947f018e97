"""Incidents (EU AI Act Art. 73): the reporting deadline per severity counted from awareness, affected
versions that must exist, linked audit entries, the history with who did what, the incident.* events
recorded with each change, who may open, update, close and read them; and `tunegate incidents`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.registry.adapters.credentials import CredentialStore
from services.registry.domain.errors import InvalidRequest
from services.registry.domain.incidents import REPORTING_RULES, open_incident, report_deadline
from tests.registry.registry_support import World, bearer
from tests.registry.test_model_versions import VERSION, emitted, registered
from tests.registry.test_registry_evaluation import tunegate, wired  # noqa: F401 - the fixture

AWARE = datetime(2026, 1, 4, 9, 0, tzinfo=UTC)
ENTRY = "0190a0b0-0000-7000-8000-000000000001"


def post(world: World, path: str, token: str | None, **body: Any) -> Any:
    return world.client.post(path, json=body, headers=bearer(token))


def test_deadlines_follow_article_73_and_count_from_awareness() -> None:
    assert report_deadline("widespread_or_critical_infrastructure", AWARE) == AWARE + timedelta(days=2)
    assert report_deadline("death", AWARE) == AWARE + timedelta(days=10)
    assert report_deadline("serious", AWARE) == AWARE + timedelta(days=15)
    assert report_deadline("other", AWARE) is None
    assert {rule.article for rule in REPORTING_RULES.values() if rule.days} == {
        "EU AI Act Art. 73(2)", "EU AI Act Art. 73(3)", "EU AI Act Art. 73(4)"}
    incident = open_incident(title="t", severity="serious", affected_versions=[VERSION], known_versions={VERSION},
                             by="registry", now=AWARE + timedelta(hours=1), aware_at=AWARE)
    assert incident.overdue(AWARE + timedelta(days=15, minutes=1)) and not incident.overdue(AWARE + timedelta(days=14))
    with pytest.raises(InvalidRequest, match=r"no such model version: other\.v1"):
        open_incident(title="t", severity="serious", affected_versions=["other.v1"], known_versions=set(),
                      by="registry", now=AWARE)
    with pytest.raises(InvalidRequest, match="in the future"):
        open_incident(title="t", severity="death", affected_versions=[VERSION], known_versions={VERSION},
                      by="registry", now=AWARE, aware_at=AWARE + timedelta(days=1))


@pytest.mark.anyio
async def test_open_update_report_close_with_history_and_events(world: World) -> None:
    bob = await registered(world, "ev-1")
    reader = world.principal("ada", "auditor")
    body = {"title": "Leaked an e-mail address in an answer", "severity": "serious", "affected_versions": [VERSION],
            "audit_entries": [ENTRY], "aware_at": "2026-01-05T08:00:00Z"}
    assert post(world, "/incidents", None, **body).status_code == 401
    assert post(world, "/incidents", reader, **body).status_code == 403
    assert post(world, "/incidents", bob, **{**body, "affected_versions": ["nope.v1"]}).status_code == 422
    assert post(world, "/incidents", bob, **{**body, "severity": "mild"}).status_code == 422
    assert post(world, "/incidents", bob, **{**body, "audit_entries": ["../x"]}).status_code == 422

    opened = post(world, "/incidents", bob, **body)
    assert opened.status_code == 201, opened.text
    incident = opened.json()
    iid = incident["id"]
    assert incident["report_deadline"].startswith("2026-01-20T08:00:00")
    assert incident["article"] == "EU AI Act Art. 73(2)"
    assert incident["status"] == "open" and not incident["overdue"]
    [event] = emitted(world, "incident.opened")
    assert event["incident_id"] == iid and event["opened_by"] == "bob" and event["audit_entries"] == [ENTRY]

    escalated = post(world, f"/incidents/{iid}/updates", bob, note="critical infrastructure hit",
                     severity="widespread_or_critical_infrastructure")
    assert escalated.status_code == 200 and escalated.json()["report_deadline"].startswith("2026-01-07T08:00:00")
    world.clock.advance(3 * 86400)
    assert world.get("/incidents", reader, status="open").json()[0]["overdue"] is True
    reported = post(world, f"/incidents/{iid}/updates", bob, note="reported", reported_reference="MSA-2026-17")
    assert reported.json()["overdue"] is False and reported.json()["report_reference"] == "MSA-2026-17"
    closed = post(world, f"/incidents/{iid}/close", bob, resolution="version retired, filter added")
    assert closed.json()["status"] == "closed"
    assert [h["action"] for h in closed.json()["history"]] == ["opened", "updated", "reported", "closed"]
    assert post(world, f"/incidents/{iid}/close", bob, resolution="again").status_code == 409
    assert post(world, f"/incidents/{iid}/updates", bob, note="late").status_code == 409
    assert [e["updated_by"] for e in emitted(world, "incident.updated")] == ["bob", "bob"]
    assert emitted(world, "incident.closed")[0]["reported_at"] is not None
    assert world.get("/incidents", reader, status="open").json() == []
    assert world.get("/incidents", reader, status="weird").status_code == 422
    assert world.get("/incidents/inc_nope", reader).status_code == 404
    assert world.get("/incidents/..%2Fx", reader).status_code == 404


@pytest.mark.anyio
async def test_incidents_through_the_cli(wired: World) -> None:  # noqa: F811
    bob = await registered(wired, "ev-1")
    CredentialStore(wired.settings).save_token("bob", bob)
    opened = tunegate("incidents", "open", "--title", "Bias complaint", "--severity", "death", "--version", VERSION,
                      "--as", "bob", "--json")
    assert opened.exit_code == 0, opened.output
    iid = json.loads(opened.stdout)["id"]
    assert tunegate("incidents", "open", "--title", "x", "--severity", "mild", "--version", VERSION,
                    "--as", "bob").exit_code == 2
    assert tunegate("incidents", "show", "../etc", "--as", "bob").exit_code == 2
    updated = tunegate("incidents", "update", iid, "--note", "linked", "--audit-entry", ENTRY, "--as", "bob")
    assert updated.exit_code == 0 and f"incident {iid} updated" in updated.stdout
    listed = tunegate("incidents", "list", "--status", "open", "--as", "bob")
    assert iid in listed.stdout and "2026-01-15" in listed.stdout
    shown = tunegate("incidents", "show", iid, "--as", "bob")
    assert "Art. 73(4)" in shown.stdout and ENTRY in shown.stdout and "opened by bob" in shown.stdout
    closed = tunegate("incidents", "close", iid, "--resolution", "unfounded", "--as", "bob")
    assert closed.exit_code == 0 and "closed" in closed.stdout
