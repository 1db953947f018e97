"""HTTP API: authentication and authorisation failures, JSON error bodies, queries."""

from __future__ import annotations

import pytest

from services.registry.adapters import repository
from tests.registry.registry_support import World, make_spec

pytestmark = pytest.mark.anyio


@pytest.fixture
async def waiting(world: World) -> World:
    await world.submit(make_spec())
    await world.scanned()
    return world


async def test_missing_and_malformed_authorization_is_401(waiting: World) -> None:
    missing = waiting.decide("job_1", None, decision="approve")
    assert missing.status_code == 401
    assert missing.json()["error"] == "unauthenticated"
    assert "Authorization header missing" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    basic = waiting.client.post(
        "/jobs/job_1/approvals", json={"decision": "approve"}, headers={"Authorization": "Basic Ym9iOnB3"}
    )
    assert basic.status_code == 401 and "Bearer <token>" in basic.json()["detail"]
    unknown = waiting.decide("job_1", "tg_not-a-real-token", decision="approve")
    assert unknown.status_code == 401 and "not recognised" in unknown.json()["detail"]


async def test_revoked_token_is_401(waiting: World) -> None:
    bob = waiting.principal("bob", "approver")
    with waiting.runtime.db.transaction() as session:
        principal = repository.require_principal(session, "bob")
    principal.revoke(by="test", reason="left", now=waiting.clock())
    await waiting.commit(principal)
    response = waiting.decide("job_1", bob, decision="approve")
    assert response.status_code == 401 and "revoked" in response.json()["detail"]
    assert waiting.state() == "awaiting_approval"


@pytest.mark.parametrize("roles", [("requester",), ("deployer", "auditor"), ("admin",)])
async def test_wrong_role_is_403_with_a_clear_body(waiting: World, roles: tuple[str, ...]) -> None:
    token = waiting.principal("dave", *roles)
    response = waiting.decide("job_1", token, decision="approve")
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "detail": f"principal 'dave' has roles [{', '.join(roles)}]; deciding on a job needs the 'approver' role",
    }
    assert waiting.runtime.of_type("approval.granted") == []


async def test_bad_body_and_unknown_job(waiting: World) -> None:
    bob = waiting.principal("bob", "approver")
    bad = waiting.decide("job_1", bob, decision="maybe")
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
    assert bad.json()["detail"].startswith("body.decision:")
    extra = waiting.decide("job_1", bob, decision="approve", approver="someone-else")
    assert extra.status_code == 422 and "body.approver" in extra.json()["detail"]
    missing = waiting.decide("job_nope", bob, decision="approve")
    assert missing.status_code == 404 and missing.json() == {"error": "not_found", "detail": "job job_nope not found"}
    assert waiting.get("/jobs/job_nope").status_code == 404
    route = waiting.client.get("/nothing-here")
    assert route.status_code == 404 and route.json()["error"] == "http_error"


async def test_queries(waiting: World) -> None:
    await waiting.submit(make_spec(problem=""), job_id="job_2")
    assert waiting.client.get("/healthz").json() == {"status": "ok"}  # open: no token
    listed = waiting.get("/jobs").json()
    assert {j["id"]: j["state"] for j in listed} == {"job_1": "awaiting_approval", "job_2": "rejected"}
    only = waiting.get("/jobs", state="rejected").json()
    assert [j["id"] for j in only] == ["job_2"]
    bad = waiting.get("/jobs", state="done")
    assert bad.status_code == 422 and "unknown state 'done'" in bad.json()["detail"]
    view = waiting.get("/jobs/job_1").json()
    assert view["advice"]["verdict"] == "fine_tuning_fits"
    assert view["scan_summary"]["verdict"] == "clean"
    assert view["approval_expires_at"] == "2026-01-05T10:00:00Z"


async def test_serve_publishes_its_url_and_removes_it_on_stop(world: World) -> None:
    import asyncio

    import httpx

    from services.registry.entrypoints.serve import serve, url_file

    task = asyncio.create_task(serve(world.runtime, world.governance))
    target = url_file(world.settings)
    for _ in range(200):
        if target.exists():
            break
        await asyncio.sleep(0.02)
    url = target.read_text().strip()
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not target.exists()
