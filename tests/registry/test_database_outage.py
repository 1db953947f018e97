"""The registry's database unreachable (PostgreSQL down or cut off): every request that needs it is answered
503 with Retry-After and a reason, in the API's JSON shape or as a console page, never a 500 with a traceback."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from services.registry.bootstrap import build_governance
from services.registry.entrypoints.http import create_app
from shared.config import Settings
from shared.storage.db import Database
from tests.registry.console_support import login
from tests.registry.registry_support import FakeRuntime


def test_an_unreachable_database_is_a_503_with_retry_after_never_a_500(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    db = Database("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")  # nothing listens on port 1
    app = create_app(FakeRuntime(settings=settings, db=db), build_governance(settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        health = client.get("/healthz")
        jobs = client.get("/jobs", headers={"authorization": "Bearer tg_not-checked-before-the-database"})
        page = login(client, "tg_not-checked-before-the-database")
    db.dispose()
    for response in (health, jobs):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "2"
        body = response.json()
        assert body["error"] == "database_unavailable" and "database is unreachable" in body["detail"]
    assert page.status_code == 503 and page.headers["retry-after"] == "2"
    assert "Database unavailable" in page.text and "Traceback" not in page.text


def test_a_statement_the_database_refuses_is_a_logged_500_not_an_outage(tmp_path: Path) -> None:
    """SQLite's "no such table" is an OperationalError as an outage is, but retrying will not fix it: the
    answer must not tell the client to come back in two seconds."""
    settings = Settings(home=tmp_path / "home")
    db = Database(f"sqlite:///{tmp_path / 'without-tables.db'}")
    app = create_app(FakeRuntime(settings=settings, db=db), build_governance(settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        jobs = client.get("/jobs", headers={"authorization": "Bearer tg_not-checked-before-the-database"})
    db.dispose()
    assert jobs.status_code == 500, jobs.text
    assert "retry-after" not in jobs.headers
    assert jobs.json()["error"] == "internal_error" and "Traceback" not in jobs.text
