"""The web console over HTTP: login, session cookie, CSRF, expiry, roles as in the API, job pages and
decisions, and the audit ledger pages."""

from __future__ import annotations

import time
from datetime import timedelta, timezone
from pathlib import Path

import pytest
from rich.console import Console

from services.cli.demo import AUDITOR, Demo
from services.registry.adapters import repository
from services.registry.adapters.credentials import CredentialStore
from services.registry.console.sessions import SESSION_COOKIE, SessionCodec
from services.registry.domain.principals import hash_token
from shared.config import Settings
from tests.registry.console_support import csrf_of, fill_ledger, hidden, login
from tests.registry.registry_support import World, make_spec

pytestmark = pytest.mark.anyio


@pytest.fixture
async def high_risk(world: World) -> World:
    await world.submit(make_spec(domain="employment"))
    await world.scanned()
    return world


async def test_login_sets_a_strict_http_only_cookie_and_pages_need_it(high_risk: World) -> None:
    client = high_risk.client
    anonymous = client.get("/console/jobs", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/console/login?next=/console/jobs"
    filtered = client.get("/console/jobs?state=training", follow_redirects=False)
    assert filtered.headers["location"] == "/console/login?next=/console/jobs%3Fstate%3Dtraining"
    bob = high_risk.principal("bob", "approver")
    response = login(client, bob)
    assert response.status_code == 303 and response.headers["location"] == "/console/jobs"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # console_secure_cookies is off by default (plain-HTTP embedded mode)
    assert (high_risk.settings.keys_dir / "console_session.key").stat().st_mode & 0o777 == 0o600
    assert bob not in cookie and hash_token(bob) not in client.get("/console/jobs").text
    page = client.get("/console/jobs")
    assert page.status_code == 200 and "job_1" in page.text and "bob (approver)" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_login_refuses_bad_tokens_and_forged_forms(high_risk: World) -> None:
    client = high_risk.client
    wrong = login(client, "tg_not-a-real-token")
    assert wrong.status_code == 401 and "token not recognised" in wrong.text
    bob = high_risk.principal("bob", "approver")
    client.get("/console/login")
    forged = client.post("/console/login", data={"token": bob, "nonce": "0" * 32}, follow_redirects=False)
    assert forged.status_code == 403 and "login form expired or was not served by this console" in forged.text
    assert SESSION_COOKIE not in forged.headers.get("set-cookie", "")
    crowded = client.post("/console/login", data={f"f{i}": "x" for i in range(30)})
    assert crowded.status_code == 422 and "more than 20 fields" in crowded.text
    offsite = login(client, bob, next_path="https://evil.example/")
    assert offsite.headers["location"] == "/console/jobs"  # never an open redirect


async def test_expired_tampered_and_rotated_sessions_are_refused(high_risk: World) -> None:
    client = high_risk.client
    bob = high_risk.principal("bob", "approver")
    codec = SessionCodec.for_keys_dir(high_risk.settings.keys_dir)
    old, _ = codec.issue("bob", hash_token(bob), now=time.time() - 3600, ttl_s=60)
    client.cookies.set(SESSION_COOKIE, old, path="/console")
    expired = client.get("/console/jobs")
    assert expired.status_code == 401 and "session expired" in expired.text and "Log in" in expired.text
    fresh, _ = codec.issue("bob", hash_token(bob), now=time.time(), ttl_s=60)
    client.cookies.set(SESSION_COOKIE, fresh.replace("eyJ", "eyK", 1), path="/console")
    tampered = client.get("/console/jobs")
    assert tampered.status_code == 401 and "not issued by this registry" in tampered.text
    login(client, bob)
    with high_risk.runtime.db.transaction() as session:
        principal = repository.require_principal(session, "bob")
    principal.rotate(token_sha256=hash_token("tg_new"), key=None, by="test", now=high_risk.clock())
    await high_risk.commit(principal)
    rotated = client.get("/console/jobs")
    assert rotated.status_code == 401 and "rotated since you logged in" in rotated.text


async def test_roles_are_the_apis(high_risk: World) -> None:
    client = high_risk.client
    login(client, high_risk.principal("dora", "deployer"))
    refused = client.get("/console/jobs")
    assert refused.status_code == 403
    api = high_risk.client.get("/jobs", headers={"Authorization": f"Bearer {high_risk.principal('dan', 'deployer')}"})
    assert api.json()["detail"].replace("'dan'", "'dora'") in refused.text.replace("&#39;", "'")
    login(client, high_risk.principal("erin", "requester"))
    assert "job_1" not in client.get("/console/jobs").text  # a requester lists only its own jobs
    assert client.get("/console/jobs/job_1").status_code == 403
    assert client.get("/console/audit").status_code == 403
    login(client, high_risk.reader())
    page = client.get("/console/jobs/job_1")
    assert page.status_code == 200 and "deciding needs the &#39;approver&#39; role" in page.text
    decided = client.post(
        "/console/jobs/job_1/decision", data={"decision": "approve", "csrf": hidden(page.text, "csrf")}
    )
    assert decided.status_code == 403 and high_risk.state() == "awaiting_approval"
    assert client.get("/console/jobs?state=nonsense").status_code == 422
    assert client.get("/console/jobs/..%2Fetc").status_code in (404, 422)


async def test_decisions_need_csrf_and_show_separation_of_duties(high_risk: World) -> None:
    client = high_risk.client
    assert high_risk.decide("job_1", high_risk.principal("bob", "approver"), decision="approve").status_code == 200
    login(client, high_risk.principal("carol", "approver"))
    page = client.get("/console/jobs/job_1")
    assert "Requested by</dt><dd>alice (may not approve)" in page.text
    assert "Approved by</dt><dd>bob</dd>" in page.text and "<strong>1 more</strong> still needed" in page.text
    assert "EMAIL_ADDRESS" in page.text and "NER <strong>on</strong>" in page.text
    no_token = client.post("/console/jobs/job_1/decision", data={"decision": "approve"})
    assert no_token.status_code == 403 and "CSRF token is missing" in no_token.text
    other = SessionCodec.for_keys_dir(high_risk.settings.keys_dir)
    _, foreign = other.issue("carol", "x", now=time.time(), ttl_s=60)
    forged = client.post(
        "/console/jobs/job_1/decision", data={"decision": "approve", "csrf": other.csrf_token(foreign)}
    )
    assert forged.status_code == 403 and high_risk.state() == "awaiting_approval"
    empty_reason = client.post(
        "/console/jobs/job_1/decision", data={"decision": "reject", "csrf": hidden(page.text, "csrf")}
    )
    assert empty_reason.status_code == 422 and "a rejection needs a non-empty reason" in empty_reason.text
    approved = client.post(
        "/console/jobs/job_1/decision",
        data={"decision": "approve", "comment": "looks right", "csrf": hidden(page.text, "csrf")},
        follow_redirects=False,
    )
    assert approved.status_code == 303 and high_risk.state() == "training"
    assert high_risk.runtime.of_type("training.requested")[0].payload["approvers"] == ["bob", "carol"]
    after = client.get("/console/jobs/job_1").text
    assert "Approved by</dt><dd>bob, carol</dd>" in after and "you already decided" not in after
    logout = client.post("/console/logout", data={"csrf": csrf_of(client, "/console/jobs")}, follow_redirects=False)
    assert logout.status_code == 303 and client.get("/console/jobs", follow_redirects=False).status_code == 303


async def test_audit_pages_search_and_show_a_proof(high_risk: World) -> None:
    fill_ledger(high_risk.settings, high_risk.runtime.published)
    client = high_risk.client
    login(client, high_risk.reader())
    listing = client.get("/console/audit", params={"subject": "job_1", "type": "approval.requested"})
    assert listing.status_code == 200 and listing.text.count("approval.requested") >= 1
    assert "job.accepted" not in listing.text
    assert client.get("/console/audit", params={"since": "yesterday"}).status_code == 422
    newest = high_risk.runtime.published[-1].occurred_at
    later = (newest + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=2))).isoformat()  # same moment, +02:00
    assert "No entry matches." in client.get("/console/audit", params={"since": later}).text
    assert "No entry matches." not in client.get("/console/audit", params={"until": later}).text
    event_id = high_risk.runtime.of_type("approval.requested")[0].event_id
    entry = client.get(f"/console/audit/entries/{event_id}")
    assert entry.status_code == 200 and "tunegate.audit.inclusion-proof/v1" in entry.text
    assert "BEGIN PUBLIC KEY" in entry.text and "/console/static/verify.js" in entry.text
    assert client.get("/console/audit/entries/nope").status_code == 404
    assert "BEGIN PUBLIC KEY" in client.get("/console/audit/public-key").text
    assert client.get("/console/static/verify.js").status_code == 200


def test_demo_prints_the_console_url_and_the_demo_tokens(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home)
    store = CredentialStore(settings)
    store.save_admin_token("tg_admin-token")
    store.save_token(AUDITOR, "tg_auditor-token")
    settings.path("run", "registry.url").write_text("http://127.0.0.1:8123\n")
    printed = Console(record=True, width=200)
    Demo(home, printed).print_console_logins([AUDITOR, "demo-never-created"])
    text = printed.export_text()
    assert "web console: http://127.0.0.1:8123/console/" in text
    assert "admin: tg_admin-token" in text and f"{AUDITOR}: tg_auditor-token" in text
    assert "demo-never-created" not in text
