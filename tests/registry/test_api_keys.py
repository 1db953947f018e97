"""Gateway API keys in the registry: the aggregate's rules, the admin-only API with precise 4xx errors, the
`tunegate keys` CLI against the API, and apikey.* events that carry the secret's hash, never the secret.
A secret the registry issues opens the gateway's key table built from those events."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.gateway.domain.keys import RevokedKey, UnknownKey
from services.gateway.domain.state import GatewayState
from services.registry.domain.api_keys import ApiKey, hash_secret, new_key_id, new_secret
from services.registry.domain.errors import Conflict
from services.registry.domain.events import ApiKeyCreated, ApiKeyRevoked, ApiKeyRotated
from tests.registry.registry_support import World, bearer
from tests.registry.test_registry_evaluation import tunegate, wired  # noqa: F401 - the fixture

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
BODY = {
    "name": "support bot",
    "tenant": "acme",
    "models": ["support-triage", "support-triage.v3"],
    "limits": {"requests_per_minute": 50, "tokens_per_day": 1000},
}


def make_key(**overrides: object) -> ApiKey:
    fields: dict[str, object] = {
        "key_id": "key_0123456789abcdef",
        "name": "bot",
        "tenant": "acme",
        "models": ["b", "a", "b"],
        "requests_per_minute": 10,
        "tokens_per_day": 100,
        "key_sha256": "0" * 64,
        "by": "root",
        "now": NOW,
        **overrides,
    }
    return ApiKey.create(**fields)  # type: ignore[arg-type]


def published(world: World) -> str:
    return json.dumps([e.model_dump(mode="json") for e in world.runtime.published])


# ---------------------------------------------------------------- domain


def test_secrets_name_their_key_and_split_unambiguously() -> None:
    key_id = new_key_id()
    secrets_ = {new_secret(key_id) for _ in range(200)}
    assert len(secrets_) == 200
    for secret in secrets_:
        assert secret.startswith(f"tgk_{key_id[4:]}_") and len(secret) == 4 + 16 + 1 + 43
    assert any("_" in s[21:] for s in secrets_), "the random part may hold '_': the id part's fixed length decides"
    with pytest.raises(ValueError, match="does not match"):
        new_secret("key_UPPER")


def test_the_aggregate_records_each_change_and_refuses_what_makes_no_sense() -> None:
    key = make_key()
    assert key.models == ["a", "b"]
    (created,) = key.pull_events()
    assert isinstance(created, ApiKeyCreated) and created.subject == key.key_id and created.key_sha256 == "0" * 64
    assert make_key(models=["x", "*"]).models == ["*"]

    key.rotate(key_sha256="1" * 64, by="root", now=NOW)
    with pytest.raises(Conflict, match="the current one"):
        key.rotate(key_sha256="1" * 64, by="root", now=NOW)
    with pytest.raises(ValueError, match="reason"):
        key.revoke(by="root", reason="  ", now=NOW)
    key.revoke(by="root", reason="leaked", now=NOW)
    with pytest.raises(Conflict, match=r"was revoked at .*cannot rotate it"):
        key.rotate(key_sha256="2" * 64, by="root", now=NOW)
    with pytest.raises(Conflict, match="cannot revoke it again"):
        key.revoke(by="root", reason="again", now=NOW)
    assert [type(e) for e in key.pull_events()] == [ApiKeyRotated, ApiKeyRevoked]

    for bad, match in (
        ({"tenant": "../x"}, "tenant"),
        ({"models": []}, "at least one model"),
        ({"models": ["Upper"]}, "is not a model name"),
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"tokens_per_day": 10**11}, "tokens_per_day"),
        ({"name": "a\nb"}, "printable"),
        ({"key_id": "key_x"}, "key id"),
    ):
        with pytest.raises(ValueError, match=match):
            make_key(**bad)


# ---------------------------------------------------------------- HTTP


async def test_admin_creates_rotates_revokes_and_events_carry_the_hash_only(world: World) -> None:
    admin = world.admin()
    created = world.client.post("/keys", json=BODY, headers=bearer(admin))
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    view = created.json()["key"]
    key_id = view["key_id"]
    assert secret.startswith(f"tgk_{key_id[4:]}_") and "key_sha256" not in view
    assert view["models"] == ["support-triage", "support-triage.v3"] and view["limits"]["requests_per_minute"] == 50
    (event,) = world.runtime.of_type("apikey.created")
    assert event.payload == {
        "key_id": key_id,
        "name": "support bot",
        "tenant": "acme",
        "models": ["support-triage", "support-triage.v3"],
        "limits": {"requests_per_minute": 50, "tokens_per_day": 1000},
        "key_sha256": hash_secret(secret),
        "created_by": "root",
    }
    assert (event.subject, event.actor, event.stream) == (key_id, "root", "tunegate.jobs")

    rotated = world.client.post(f"/keys/{key_id}/rotate", json={}, headers=bearer(admin))
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != secret and rotated.json()["key"]["rotated_at"] is not None
    (rotation,) = world.runtime.of_type("apikey.rotated")
    assert rotation.payload == {"key_id": key_id, "key_sha256": hash_secret(new), "rotated_by": "root"}

    revoked = world.client.post(f"/keys/{key_id}/revoke", json={"reason": "leaked"}, headers=bearer(admin))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert world.runtime.of_type("apikey.revoked")[0].payload == {
        "key_id": key_id,
        "reason": "leaked",
        "revoked_by": "root",
    }
    again = world.client.post(f"/keys/{key_id}/rotate", json={}, headers=bearer(admin))
    assert again.status_code == 409 and "was revoked at" in again.json()["detail"]
    assert len(world.runtime.of_type("apikey.rotated")) == 1, "a refused change emits nothing"

    everything = published(world)
    assert secret not in everything and new not in everything
    listed = world.client.get("/keys", headers=bearer(world.reader()))
    assert listed.status_code == 200 and [k["key_id"] for k in listed.json()] == [key_id]
    assert secret not in listed.text and new not in listed.text and hash_secret(new) not in listed.text
    assert world.client.get("/keys", params={"tenant": "other"}, headers=bearer(admin)).json() == []

    # What the gateway learns from these events: the rotated secret opens nothing once revoked.
    table = GatewayState()
    for envelope in world.runtime.published:
        if envelope.type.startswith("apikey."):
            table.apply(envelope.type, envelope.payload)
    with pytest.raises(UnknownKey):
        table.keys.authenticate(secret)
    with pytest.raises(RevokedKey):
        table.keys.authenticate(new)


async def test_keys_need_the_admin_role_and_valid_bodies(world: World) -> None:
    admin, deployer = world.admin(), world.principal("dora", "deployer")
    assert world.client.post("/keys", json=BODY).status_code == 401
    forbidden = world.client.post("/keys", json=BODY, headers=bearer(deployer))
    assert forbidden.status_code == 403 and "creating an API key needs the 'admin' role" in forbidden.json()["detail"]
    assert world.client.get("/keys", headers=bearer(deployer)).status_code == 403
    assert world.client.post("/keys/key_0123456789abcdef/revoke", json={"reason": "x"},
                             headers=bearer(deployer)).status_code == 403
    for body, where in (
        ({**BODY, "tenant": "../etc"}, "tenant"),
        ({**BODY, "models": []}, "models"),
        ({**BODY, "models": ["Not A Model"]}, "models"),
        ({**BODY, "limits": {"requests_per_minute": 0}}, "requests_per_minute"),
        ({**BODY, "secret": "mine"}, "secret"),
        ({k: v for k, v in BODY.items() if k != "name"}, "name"),
    ):
        refused = world.client.post("/keys", json=body, headers=bearer(admin))
        assert refused.status_code == 422, body
        assert refused.json()["error"] == "invalid_request" and where in refused.json()["detail"], refused.json()
    big = world.client.post("/keys", json={**BODY, "name": "x" * 2_000_000}, headers=bearer(admin))
    assert big.status_code == 413
    missing = world.client.post("/keys/key_0123456789abcdef/rotate", json={}, headers=bearer(admin))
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]
    malformed = world.client.post("/keys/../../principals/rotate", json={}, headers=bearer(admin))
    assert malformed.status_code == 404
    bad_id = world.client.post("/keys/KEY_1/revoke", json={"reason": "x"}, headers=bearer(admin))
    assert bad_id.status_code == 404 and "not an API key id" in bad_id.json()["detail"]
    created = world.client.post("/keys", json=BODY, headers=bearer(admin)).json()["key"]["key_id"]
    blank = world.client.post(f"/keys/{created}/revoke", json={"reason": "   "}, headers=bearer(admin))
    assert blank.status_code == 422 and "reason" in blank.json()["detail"]
    assert world.runtime.of_type("apikey.revoked") == []
    assert len(world.runtime.of_type("apikey.created")) == 1, "refused requests emit nothing"


# ---------------------------------------------------------------- CLI


async def test_the_cli_creates_lists_rotates_and_revokes(wired: World, tmp_path: Path) -> None:  # noqa: F811
    wired.admin()
    from services.registry.adapters.credentials import CredentialStore

    CredentialStore(wired.settings).save_admin_token(wired.principal("ada", "admin"))
    saved = tmp_path / "bot.key"
    created = tunegate(
        "keys", "create", "--tenant", "acme", "--model", "support-triage", "--model", "support-triage.v3",
        "--rpm", "50", "--tokens-per-day", "1000", "--name", "support bot", "--save", str(saved),
    )
    assert created.exit_code == 0, created.output
    (event,) = wired.runtime.of_type("apikey.created")
    key_id = event.payload["key_id"]
    secret = saved.read_text().strip()
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600 and hash_secret(secret) == event.payload["key_sha256"]
    assert f"API key {key_id} (support bot) created for tenant acme" in " ".join(created.stdout.split())
    assert f"secret (shown once): {secret}" in created.stdout
    exists = tunegate("keys", "create", "--tenant", "acme", "--model", "m", "--name", "x", "--save", str(saved))
    assert exists.exit_code == 2 and "the file exists" in exists.stderr

    listed = json.loads(tunegate("keys", "list", "--json").stdout)
    assert [(k["key_id"], k["tenant"], k["limits"]["tokens_per_day"]) for k in listed] == [(key_id, "acme", 1000)]
    assert secret not in json.dumps(listed)
    table = tunegate("keys", "list")
    assert key_id in table.stdout and secret not in table.stdout

    rotated = json.loads(tunegate("keys", "rotate", key_id, "--json").stdout)
    assert rotated["secret"] != secret and hash_secret(rotated["secret"]) == (
        wired.runtime.of_type("apikey.rotated")[0].payload["key_sha256"]
    )
    revoked = tunegate("keys", "revoke", key_id, "--reason", "leaked")
    assert revoked.exit_code == 0 and f"API key {key_id} revoked" in revoked.stdout
    refused = tunegate("keys", "rotate", key_id)
    assert refused.exit_code == 1 and "was revoked at" in " ".join(refused.stderr.split())
    assert secret not in published(wired) and rotated["secret"] not in published(wired)


async def test_cli_arguments_are_checked_before_any_request(wired: World) -> None:  # noqa: F811
    for args, message in (
        (("create", "--tenant", "../x", "--model", "m", "--name", "n"), "tenant"),
        (("create", "--tenant", "acme", "--model", "Bad Model", "--name", "n"), "not a model name"),
        (("create", "--tenant", "acme", "--model", "m", "--name", "n", "--rpm", "0"), "requests_per_minute"),
        (("rotate", "key_X"), "not an API key id"),
        (("revoke", "key_0123456789abcdef", "--reason", " "), "--reason"),
    ):
        result = tunegate("keys", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.stderr.split()), (args, result.stderr)
    assert wired.runtime.published == []
