"""Principals through the API: create / rotate / revoke / list with the admin role, each change and its
principal.* event in one unit of work, token hashes only in events; the first admin from the one-time
bootstrap secret, which cannot be replayed."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from services.registry.adapters import first_admin, repository
from services.registry.adapters.client import RegistryClient
from services.registry.adapters.credentials import CredentialStore, bootstrap_secret_path
from services.registry.domain.principals import hash_token
from services.registry.entrypoints import cli, cli_common, principals_cli
from shared.security.keys import key_id_for, public_key_pem, public_key_raw
from tests.registry.registry_support import World, bearer

pytestmark = pytest.mark.anyio


def public_hex() -> tuple[str, str]:
    key = Ed25519PrivateKey.generate().public_key()
    return public_key_raw(key).hex(), key_id_for(key)


def everything_published(world: World) -> str:
    return json.dumps([e.model_dump(mode="json") for e in world.runtime.published])


async def test_admin_creates_rotates_revokes_and_events_carry_hashes_only(world: World) -> None:
    admin = world.admin()
    public, key_id = public_hex()
    created = world.client.post(
        "/principals",
        json={"name": "rita", "roles": ["requester"], "public_key": public},
        headers=bearer(admin),
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    (event,) = world.runtime.of_type("principal.created")
    assert event.payload == {
        "name": "rita",
        "roles": ["requester"],
        "token_sha256": hash_token(token),
        "public_key": public,
        "key_id": key_id,
        "created_by": "root",
    }
    assert (event.subject, event.actor, event.stream) == ("rita", "root", "tunegate.jobs")

    new_public, new_key_id = public_hex()
    rotated = world.client.post("/principals/rita/rotate", json={"public_key": new_public}, headers=bearer(admin))
    assert rotated.status_code == 200, rotated.text
    new_token = rotated.json()["token"]
    assert [(k["key_id"], k["retired_at"] is None) for k in rotated.json()["principal"]["keys"]] == [
        (key_id, False),
        (new_key_id, True),
    ]
    (rotation,) = world.runtime.of_type("principal.rotated")
    assert rotation.payload["token_sha256"] == hash_token(new_token) and rotation.payload["key_id"] == new_key_id
    assert world.get("/jobs", token).status_code == 401, "the old token stops at once"
    assert world.get("/jobs", new_token).status_code == 200

    revoked = world.client.post("/principals/rita/revoke", json={"reason": "left"}, headers=bearer(admin))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert world.runtime.of_type("principal.revoked")[0].payload == {
        "name": "rita",
        "revoked_by": "root",
        "reason": "left",
    }
    again = world.client.post("/principals/rita/revoke", json={}, headers=bearer(admin))
    assert again.status_code == 409 and "was revoked at" in again.json()["detail"]
    assert world.get("/jobs", new_token).status_code == 401

    published = everything_published(world)
    assert token not in published and new_token not in published
    listed = world.client.get("/principals", headers=bearer(world.reader())).json()
    assert {p["name"] for p in listed} == {"root", "rita", "auditor-1"}
    assert token not in json.dumps(listed)


async def test_principal_changes_need_the_admin_role_and_valid_input(world: World) -> None:
    admin, approver = world.admin(), world.principal("bob", "approver")
    body = {"name": "x", "roles": ["approver"]}
    assert world.client.post("/principals", json=body).status_code == 401
    forbidden = world.client.post("/principals", json=body, headers=bearer(approver))
    assert forbidden.status_code == 403 and "creating a principal needs the 'admin' role" in forbidden.json()["detail"]
    assert world.client.get("/principals", headers=bearer(approver)).status_code == 403
    bad_key = world.client.post("/principals", json={**body, "public_key": "00" * 31}, headers=bearer(admin))
    assert bad_key.status_code == 422 and bad_key.json()["detail"].startswith("public_key:")
    bad_name = world.client.post("/principals", json={**body, "name": "../etc"}, headers=bearer(admin))
    assert bad_name.status_code == 422 and "principal name" in bad_name.json()["detail"]
    bad_role = world.client.post("/principals", json={**body, "roles": ["root"]}, headers=bearer(admin))
    assert bad_role.status_code == 422 and "unknown role(s) root" in bad_role.json()["detail"]
    pem = world.client.post(
        "/principals",
        json={**body, "public_key": public_key_pem(Ed25519PrivateKey.generate().public_key())},
        headers=bearer(admin),
    )
    assert pem.status_code == 201, "a PEM public key is accepted too (decided by content)"
    missing = world.client.post("/principals/nobody/rotate", json={}, headers=bearer(admin))
    assert missing.status_code == 404
    assert world.runtime.of_type("principal.created")[-1].payload["name"] == "x"
    assert len(world.runtime.of_type("principal.created")) == 1, "refused requests emit nothing"


async def test_a_failed_write_emits_nothing(world: World) -> None:
    admin = world.admin()
    world.client.post("/principals", json={"name": "x", "roles": ["approver"]}, headers=bearer(admin))
    duplicate = world.client.post("/principals", json={"name": "x", "roles": ["auditor"]}, headers=bearer(admin))
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["detail"]
    assert len(world.runtime.of_type("principal.created")) == 1


# ---------------------------------------------------------------- first admin


async def test_bootstrap_secret_is_written_0600_and_consumed_once(world: World) -> None:
    path = first_admin.open_bootstrap(world.runtime.db, world.settings, world.clock())
    assert path == bootstrap_secret_path(world.settings) and path is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first_admin.open_bootstrap(world.runtime.db, world.settings, world.clock()) == path, "kept across restarts"
    secret = path.read_text()
    wrong = world.client.post("/admin/bootstrap", json={"name": "admin", "secret": "guess"})
    assert wrong.status_code == 401 and "does not match" in wrong.json()["detail"]
    done = world.client.post("/admin/bootstrap", json={"name": "admin", "secret": secret})
    assert done.status_code == 201, done.text
    token = done.json()["token"]
    assert done.json()["principal"]["roles"] == ["admin"]
    assert not path.exists()
    replay = world.client.post("/admin/bootstrap", json={"name": "admin2", "secret": secret})
    assert replay.status_code == 409 and "an active admin already exists" in replay.json()["detail"]
    (event,) = world.runtime.of_type("principal.created")
    assert (event.actor, event.payload["token_sha256"]) == ("bootstrap", hash_token(token))
    assert token not in everything_published(world) and secret not in everything_published(world)
    assert world.client.get("/principals", headers=bearer(token)).status_code == 200
    assert first_admin.open_bootstrap(world.runtime.db, world.settings, world.clock()) is None


async def test_bootstrap_reopens_only_when_no_active_admin_is_left(world: World) -> None:
    admin = world.admin()
    assert first_admin.open_bootstrap(world.runtime.db, world.settings, world.clock()) is None
    assert not bootstrap_secret_path(world.settings).exists()
    no_secret = world.client.post("/admin/bootstrap", json={"name": "admin", "secret": "x"})
    assert no_secret.status_code == 409
    with world.runtime.db.transaction() as session:
        root = repository.require_principal(session, "root")
    root.revoke(by="test", reason="lost", now=world.clock())
    await world.commit(root)
    assert world.get("/jobs", admin).status_code == 401
    path = first_admin.open_bootstrap(world.runtime.db, world.settings, world.clock())
    assert path is not None and path.exists()


async def test_cli_admin_bootstrap_shows_the_token_once_and_stores_it(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import typer

    monkeypatch.setenv("TUNEGATE_HOME", str(world.settings.home))
    monkeypatch.setenv("TUNEGATE_REGISTRY_URL", "http://registry.test")
    monkeypatch.setattr(cli_common, "open_client", lambda settings, token: RegistryClient(world.client, token))
    app = typer.Typer()
    cli.register(app)
    runner = CliRunner()
    closed = runner.invoke(app, ["admin", "bootstrap"])
    assert closed.exit_code == 1 and "no bootstrap secret" in " ".join(closed.stderr.split())
    first_admin.open_bootstrap(world.runtime.db, world.settings, world.clock())
    done = runner.invoke(app, ["admin", "bootstrap", "--json"])
    assert done.exit_code == 0, done.output
    token = json.loads(done.stdout)["token"]
    stored = CredentialStore(world.settings).admin_token_path
    assert stored.read_text() == token and stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    again = runner.invoke(app, ["admin", "bootstrap"])
    assert again.exit_code == 1 and "already stored" in again.stderr
    listed = runner.invoke(app, ["principals", "list", "--json"])
    assert [p["name"] for p in json.loads(listed.stdout)] == ["admin"]


async def test_up_bootstraps_the_first_admin_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from shared.config import Settings

    monkeypatch.setenv("TUNEGATE_HOME", str(world.settings.home))
    monkeypatch.setenv("TUNEGATE_REGISTRY_URL", "http://registry.test")
    monkeypatch.setattr(cli_common, "open_client", lambda settings, token: RegistryClient(world.client, token))
    first_admin.open_bootstrap(world.runtime.db, world.settings, world.clock())
    shown = io.StringIO()
    principals_cli.bootstrap_after_up(Settings(), Console(file=shown, width=400))
    token = CredentialStore(world.settings).admin_token()
    assert token is not None and f"token (shown once): {token}" in shown.getvalue()
    later = io.StringIO()
    principals_cli.bootstrap_after_up(Settings(), Console(file=later, width=400))
    assert later.getvalue() == "", "a second `up` neither shows nor issues a token"
    assert len(world.runtime.of_type("principal.created")) == 1
