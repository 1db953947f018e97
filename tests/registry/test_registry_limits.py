"""Limits and routes: bodies capped before they are read (413), every route but /healthz and the
bootstrap authenticated (401 without a token), requesters read only their own jobs, API docs closed
unless a token is shown or the setting opens them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.registry.entrypoints.http import create_app
from services.registry.entrypoints.limits import BodyLimit
from services.registry.settings import RegistryAPISettings
from tests.registry.registry_support import World, bearer, make_spec

pytestmark = pytest.mark.anyio

ROUTES = [
    ("GET", "/jobs"),
    ("GET", "/jobs/job_1"),
    ("POST", "/jobs/job_1/approvals"),
    ("POST", "/jobs/job_1/cancel"),
    ("GET", "/principals"),
    ("POST", "/principals"),
    ("POST", "/principals/bob/rotate"),
    ("POST", "/principals/bob/revoke"),
    ("GET", "/openapi.json"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_needs_a_token(world: World, method: str, path: str) -> None:
    await world.submit(make_spec())
    response = world.client.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"
    wrong = world.client.request(method, path, json={} if method == "POST" else None, headers=bearer("tg_nope"))
    assert wrong.status_code == 401


async def test_health_stays_open_and_docs_are_closed_by_default(world: World) -> None:
    assert world.client.get("/healthz").json() == {"status": "ok"}
    assert world.client.get("/docs").status_code == 404
    schema = world.client.get("/openapi.json", headers=bearer(world.reader()))
    assert schema.status_code == 200 and "/jobs/{job_id}/cancel" in schema.json()["paths"]


async def test_public_docs_setting_opens_them(world: World) -> None:
    app = create_app(world.runtime, world.governance, RegistryAPISettings(public_docs=True))
    with TestClient(app) as client:
        assert client.get("/docs").status_code == 200
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/jobs").status_code == 401


async def test_job_reads_by_role(world: World) -> None:
    await world.submit(make_spec())
    await world.submit(make_spec("other"), job_id="job_2")
    alice = world.principal("alice-2", "requester")
    assert world.get("/jobs/job_1", world.reader()).status_code == 200
    approver = world.principal("bob", "approver")
    assert {j["id"] for j in world.get("/jobs", approver).json()} == {"job_1", "job_2"}
    assert world.get("/jobs", alice).json() == [], "a requester lists only its own jobs"
    other = world.get("/jobs/job_1", alice)
    assert other.status_code == 403 and "may read only its own" in other.json()["detail"]
    assert world.get("/jobs/job_404", alice).status_code == 404
    deployer = world.principal("dee", "deployer")
    assert world.get("/jobs", deployer).status_code == 403


async def test_oversized_bodies_get_413_with_a_json_error(world: World) -> None:
    app = create_app(world.runtime, world.governance, RegistryAPISettings(max_body_bytes=4096))
    token = world.admin()
    with TestClient(app) as client:
        big = client.post(
            "/principals",
            content=b"{" + b" " * 5000 + b"}",
            headers={**bearer(token), "Content-Type": "application/json"},
        )
        assert big.status_code == 413
        assert big.json() == {
            "error": "payload_too_large",
            "detail": "request body of 5002 bytes is larger than the registry's limit of 4096 bytes",
        }

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(10):
                yield b" " * 1000

        streamed = client.post(
            "/principals", content=chunks(), headers={**bearer(token), "Content-Type": "application/json"}
        )
        assert streamed.status_code == 413 and streamed.json()["error"] == "payload_too_large"
        small = client.post("/principals", json={"name": "x", "roles": ["auditor"]}, headers=bearer(token))
        assert small.status_code == 201
    assert len(world.runtime.of_type("principal.created")) == 1


def test_a_300_mb_declaration_is_refused_before_a_byte_is_read() -> None:
    """An unauthenticated client announces 300 MB and sends a little: the body is never received and the
    application (authentication included) never runs."""
    reached_app: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        reached_app.append(scope["path"])

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/jobs/job_1/approvals",
        "headers": [(b"content-length", str(300 * 1024 * 1024).encode()), (b"content-type", b"application/json")],
    }
    asyncio.run(BodyLimit(app, max_bytes=1 << 20)(scope, receive, send))
    assert reached_app == []
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    body = json.loads(sent[1]["body"])
    assert body["error"] == "payload_too_large" and "314572800 bytes" in body["detail"]
    garbage = {**scope, "headers": [(b"content-length", b"-1")]}
    sent.clear()
    asyncio.run(BodyLimit(app, max_bytes=1 << 20)(garbage, receive, send))
    assert sent[0]["status"] == 400 and reached_app == []
