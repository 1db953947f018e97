"""What a hostile client found in the registry's API and console, each now a precise 4xx: NUL characters
(PostgreSQL text cannot hold them: a 500 from the database, or a JSON column that broke its next reader),
a chunked body over the cap to the console (the refusal raised inside the app reached the console's
middleware wrapped in an ExceptionGroup: a 500), numbers and moments Python cannot convert (a 500 each),
60 KB ids echoed whole in 404s, and a logged-out console cookie that went on working."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError

from services.registry.entrypoints.errors import MAX_DETAIL_CHARS, unstorable
from services.registry.entrypoints.http import create_app
from services.registry.entrypoints.limits import nul_in
from services.registry.settings import RegistryAPISettings
from tests.registry.console_support import csrf_of, login
from tests.registry.registry_support import World, bearer, make_spec

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("method", "path", "kwargs", "where"), [
    ("GET", "/jobs/job_1%00", {}, "path"),
    ("POST", "/principals/root%00/revoke", {"json": {"reason": "x"}}, "path"),
    ("GET", "/jobs?requester=a%00b", {}, "query string"),
    ("POST", "/jobs/job_1/approvals", {"json": {"decision": "approve", "comment": "a\x00b"}}, "body"),
    ("POST", "/incidents", {"content": b'{"title": "t\\u0000", "severity": "other"}'}, "body"),
    ("POST", "/erasures", {"content": b'{"subject": "a\x00b", "reason": "r"}'}, "body"),
])
async def test_a_nul_character_anywhere_is_a_400_before_any_route_runs(
        world: World, method: str, path: str, kwargs: dict[str, object], where: str) -> None:
    await world.submit(make_spec())
    token = world.admin()
    response = world.client.request(method, path, headers={**bearer(token), "content-type": "application/json"},
                                    **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "invalid_request", "detail": f"the request's {where} contains a NUL "
                               "character (\\u0000), which no field accepts"}
    assert world.runtime.of_type("approval.granted") == []


def test_what_counts_as_a_nul() -> None:
    json_type = [(b"content-type", b"application/json")]
    form_type = [(b"content-type", b"application/x-www-form-urlencoded")]
    assert nul_in({"path": "/x", "headers": json_type}, rb'{"a": "\\u0000"}') is None  # an escaped backslash
    assert nul_in({"path": "/x", "headers": json_type}, rb'{"a": "\\\u0000"}') == "body"  # backslash, then NUL
    assert nul_in({"path": "/x", "headers": json_type}, b'{"a": "100%00"}') is None  # JSON text, not a form
    assert nul_in({"path": "/x", "headers": form_type}, b"comment=a%00b") == "body"
    assert nul_in({"path": "/x", "headers": form_type}, rb"comment=\u0000") is None  # form text, not JSON
    assert nul_in({"path": "/x", "query_string": b"since=%00", "headers": []}, b"") == "query string"


def test_a_chunked_console_body_over_the_cap_is_a_413_not_a_500(world: World) -> None:
    app = create_app(world.runtime, world.governance, RegistryAPISettings(max_body_bytes=4096))

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"token=" + b"x" * 994

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/console/login", content=chunks(),
                               headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"


async def test_moments_and_sizes_python_cannot_convert_are_a_422(world: World) -> None:
    await world.submit(make_spec())
    token = world.admin()
    incident = world.client.post("/incidents", headers=bearer(token), json={
        "title": "t", "severity": "other", "affected_versions": ["ticket-triage.v1"],
        "aware_at": "0001-01-01T00:00:00+01:00"})
    assert incident.status_code in (404, 422), incident.text  # no such version here; never a 500
    assert login(world.client, token).status_code == 303
    for query, expected in (("since=9999-12-31T23:59:59-23:00", "outside the years 1 to 9999 once in UTC"),
                            ("until=0001-01-01T00:00:00%2B01:00", "outside the years 1 to 9999 once in UTC")):
        page = world.client.get(f"/console/audit?{query}")
        assert page.status_code == 422 and expected in page.text, page.text[:300]
    for size in ("%C2%B2", "%E2%91%A0"):  # '²' and '①' are digits to str.isdigit, not to int()
        page = world.client.get(f"/console/audit/consistency?old={size}&new=2")
        assert page.status_code == 422 and "is not a tree size" in page.text


def test_incident_awareness_before_the_year_1_in_utc_is_refused() -> None:
    from services.registry.domain.errors import InvalidRequest
    from services.registry.domain.incidents import open_incident

    with pytest.raises(InvalidRequest, match="aware_at: outside the years 1 to 9999 once in UTC"):
        open_incident(title="t", severity="other", affected_versions=["m.v1"], known_versions={"m.v1"},
                      by="root", now=datetime(2026, 1, 5, tzinfo=UTC),
                      aware_at=datetime.fromisoformat("0001-01-01T00:00:00+01:00"))


async def test_a_long_unknown_id_is_not_echoed_whole(world: World) -> None:
    response = world.get("/jobs/" + "j" * 60_000, world.admin())
    assert response.status_code in (404, 422)
    assert len(response.json()["detail"]) <= MAX_DETAIL_CHARS


def test_what_the_database_refuses_to_store_is_a_422_in_its_words() -> None:
    error = DataError("INSERT", {}, ValueError('value too long for type character varying(80)\nCONTEXT: ...'))
    assert unstorable(error) == ("a value in this request cannot be stored: value too long for type character "
                                 "varying(80)")


async def test_a_console_cookie_stops_working_at_logout(world: World) -> None:
    await world.submit(make_spec())
    token = world.principal("carol", "approver")
    assert login(world.client, token).status_code == 303
    kept = dict(world.client.cookies)
    csrf = csrf_of(world.client, "/console/jobs")
    assert world.client.post("/console/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    world.client.cookies.clear()
    for name, value in kept.items():
        world.client.cookies.set(name, value, path="/console")
    replayed = world.client.get("/console/jobs", follow_redirects=False)
    assert replayed.status_code == 401 and "ended by logging out" in replayed.text
    decision = world.client.post("/console/jobs/job_1/decision", data={"csrf": csrf, "decision": "approve"},
                                 follow_redirects=False)
    assert decision.status_code == 401
    assert world.runtime.of_type("approval.granted") == []
    assert login(world.client, token).status_code == 303  # a new login is a new session
    assert world.client.get("/console/jobs").status_code == 200


MALFORMED_BODIES = [
    (b'{"decision": ', "the request body is not valid JSON: Expecting value: line 1 column 14 (char 13)"),
    (b"[" * 100_000, "the request body is not valid JSON: nested more than about"),
    (b'{"decision": "approve", "comment": ' + b"1" * 5_000 + b"}",
     "the request body is not valid JSON: holds an integer of more than 4300 digits"),
    (b'{"decision": "approve", "comment": "\xff"}', "the request body is not UTF-8 text: byte 36"),
]


@pytest.mark.parametrize(("body", "detail"), MALFORMED_BODIES)
@pytest.mark.parametrize("content_type", ["application/json", "application/merge-patch+json", None])
async def test_a_malformed_json_body_is_told_only_to_a_caller_with_a_good_token(
        world: World, body: bytes, detail: str, content_type: str | None) -> None:
    """Before, FastAPI parsed the body before the token was checked: a caller with no token learnt how bodies
    are read ("There was an error parsing the body"), and one with a token learnt nothing precise."""
    await world.submit(make_spec())
    approver = world.principal("ann", "approver")
    typed = {"content-type": content_type} if content_type else {}
    for token, status in ((None, 401), ("tg_not-a-token", 401), (world.reader(), 403)):
        refused = world.client.post("/jobs/job_1/approvals", content=body, headers={**typed, **bearer(token)})
        assert refused.status_code == status, refused.text
        assert "JSON" not in refused.text and "UTF-8" not in refused.text
    answer = world.client.post("/jobs/job_1/approvals", content=body, headers={**typed, **bearer(approver)})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_json"
    assert answer.json()["detail"].startswith(detail)
    assert world.runtime.of_type("approval.granted") == []


async def test_a_malformed_body_to_a_route_without_a_token_is_a_precise_400(world: World) -> None:
    answer = world.client.post("/admin/bootstrap", content=b'{"name": "root", "secret": }',
                               headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"error": "invalid_json", "detail": "the request body is not valid JSON: Expecting "
                             "value: line 1 column 28 (char 27)"}


async def test_a_body_that_is_not_sent_as_json_is_not_read_as_json(world: World) -> None:
    await world.submit(make_spec())
    approver = world.principal("ann", "approver")
    answer = world.client.post("/jobs/job_1/approvals", content=b'{"decision": ',
                               headers={"content-type": "text/plain", **bearer(approver)})
    assert answer.status_code == 422, answer.text  # FastAPI's own answer to a body it does not read as JSON
    assert answer.json()["error"] == "invalid_request"
