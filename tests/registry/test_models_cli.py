"""`tunegate models list|show|approve|deploy|retire|rollback` against the registry API (TestClient), with
tokens kept under the world's home: what each prints, its JSON, and its errors (exit 1 for a refusal the
API gives, exit 2 for arguments refused before any request)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from services.registry.adapters.credentials import CredentialStore
from services.registry.aibom.schema import validate_aibom
from tests.registry.registry_support import World
from tests.registry.test_model_versions import VERSION, deployer, registered
from tests.registry.test_registry_evaluation import tunegate, wired  # noqa: F401 - the fixture

pytestmark = pytest.mark.anyio


def words(text: str) -> str:
    return " ".join(text.split())


async def test_the_lifecycle_through_the_cli(wired: World, tmp_path: Any) -> None:  # noqa: F811
    bob = await registered(wired, "ev-1", "ev-2")
    store = CredentialStore(wired.settings)
    store.save_token("bob", bob)
    store.save_token("dora", deployer(wired))
    v2 = "ticket-triage.v2"

    listed = tunegate("models", "list", "--as", "bob")
    assert listed.exit_code == 0, listed.output
    assert VERSION in listed.stdout and "candidate" in listed.stdout and "OVERDUE" not in listed.stdout

    refused = tunegate("models", "deploy", VERSION, "--alias", "support-triage", "--tenant", "acme", "--as", "dora")
    assert refused.exit_code == 1 and "only an approved version" in words(refused.stderr)
    for version in (VERSION, v2):
        approved = tunegate("models", "approve", version, "--as", "bob", "--comment", "ok")
        assert approved.exit_code == 0 and f"{version}: approved by bob (1/1); state approved" in approved.stdout
    first = tunegate("models", "deploy", VERSION, "--alias", "support-triage", "--tenant", "acme", "--as", "dora")
    assert first.exit_code == 0 and f"{VERSION} deployed as 'support-triage' for tenants acme" in first.stdout
    second = tunegate("models", "deploy", v2, "--alias", "support-triage", "--tenant", "acme", "--as", "dora")
    assert f"; {VERSION} deprecated" in second.stdout
    back = tunegate("models", "rollback", "support-triage", "--as", "dora", "--reason", "prose answers")
    assert back.exit_code == 0 and f"rolled back to {VERSION}; {v2} deprecated" in back.stdout

    shown = tunegate("models", "show", VERSION, "--as", "bob")
    assert "state deployed" in shown.stdout and "alias support-triage for tenants acme" in shown.stdout
    assert "decommissioning: owner support-platform" in words(shown.stdout)
    as_json = json.loads(tunegate("models", "show", VERSION, "--as", "bob", "--json").stdout)
    assert as_json["state"] == "deployed" and as_json["alias"] == "support-triage"

    out = tmp_path / "aibom.json"
    written = tunegate("models", "show", VERSION, "--aibom", "--out", str(out), "--as", "bob")
    assert written.exit_code == 0, written.output
    assert validate_aibom(json.loads(out.read_bytes())) == []
    assert hashlib.sha256(out.read_bytes()).hexdigest() == as_json["aibom"]["sha256"]

    retired = tunegate("models", "retire", v2, "--reason", "superseded", "--as", "dora")
    assert retired.exit_code == 0 and f"{v2} retired: superseded" in retired.stdout
    assert tunegate("models", "retire", VERSION, "--reason", " ", "--as", "dora").exit_code == 2


async def test_ids_are_checked_before_any_request(wired: World) -> None:  # noqa: F811
    for args in (("show", "../../etc"), ("approve", "Bad.v1", "--as", "bob"), ("rollback", "Bad Alias", "--as", "x")):
        result = tunegate("models", *args)
        assert result.exit_code == 2, args
        assert "is not allowed" in words(result.stderr)


async def test_versions_past_their_review_date_are_flagged_in_the_list(wired: World) -> None:  # noqa: F811
    bob = await registered(wired, "ev-1")
    CredentialStore(wired.settings).save_token("bob", bob)
    wired.clock.advance(200 * 86400)
    listed = tunegate("models", "list", "--as", "bob")
    assert "OVERDUE" in listed.stdout and f"1 version(s) past their review date: {VERSION}" in words(listed.stdout)
