"""`--as NAME` for the first admin finds the token `tunegate up` saved for it in credentials/admin.token: it
used to look only in credentials/admin/token, fail, and suggest `principals create admin`, which the
registry answers with 409 since the admin exists. A missing token's message now says where it looked and
what actually helps."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from services.registry.adapters import first_admin
from services.registry.adapters.client import RegistryClient
from services.registry.adapters.credentials import ADMIN_TOKEN, CredentialError, CredentialStore
from services.registry.entrypoints import cli, cli_common, principals_cli
from shared.config import Settings
from tests.registry.registry_support import World, make_spec

runner = CliRunner()


def run(*args: str) -> Any:
    app = typer.Typer()
    cli.register(app)
    return runner.invoke(app, list(args), catch_exceptions=False)


def said(result: Any) -> str:
    """stderr on one line (rich wraps long messages)."""
    return " ".join(result.stderr.split())


@pytest.fixture
def cli_home(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The CLI on the world's API (TestClient), with no token stored yet."""
    monkeypatch.setenv("TUNEGATE_HOME", str(world.settings.home))
    monkeypatch.setenv("TUNEGATE_REGISTRY_URL", "http://registry.test")
    monkeypatch.delenv("TUNEGATE_TOKEN", raising=False)
    monkeypatch.setattr(cli_common, "open_client", lambda settings, token: RegistryClient(world.client, token))
    return world


@pytest.fixture
def after_up(cli_home: World) -> World:
    """What `tunegate up` does on a fresh registry: bootstrap the first admin, 'admin', and save its token."""
    first_admin.open_bootstrap(cli_home.runtime.db, cli_home.settings, cli_home.clock())
    principals_cli.bootstrap_after_up(Settings(), Console(file=io.StringIO(), width=400))
    assert (cli_home.settings.home_dir / "credentials" / ADMIN_TOKEN).is_file()
    return cli_home


@pytest.mark.anyio
async def test_the_first_admin_cancels_as_admin_with_the_token_up_saved(after_up: World) -> None:
    await after_up.submit(make_spec())
    cancelled = run("jobs", "cancel", "job_1", "--as", "admin", "--reason", "wrong data", "--json")
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cancelled.stdout)["state"] == after_up.state() == "cancelled"


@pytest.mark.anyio
async def test_approve_as_admin_reaches_the_registry(after_up: World) -> None:
    await after_up.submit(make_spec())
    approved = run("approve", "job_1", "--as", "admin")
    # The job is still being scanned, so the registry refuses: what matters is that the token was found.
    assert "no token" not in said(approved) and "HTTP" in said(approved), said(approved)


def test_a_missing_first_admin_token_points_at_bootstrap_not_create(cli_home: World) -> None:
    missing = run("jobs", "cancel", "job_1", "--as", "admin")
    assert missing.exit_code == 1
    message = said(missing)
    assert "no token for the first admin 'admin'" in message and ADMIN_TOKEN in message
    assert "tunegate admin bootstrap" in message and "principals create" not in message


def test_a_missing_principal_token_suggests_rotate_before_create(cli_home: World) -> None:
    missing = run("jobs", "cancel", "job_1", "--as", "bob")
    assert missing.exit_code == 1
    message = said(missing)
    credentials = cli_home.settings.home_dir / "credentials"
    assert "no token for principal 'bob'" in message and str(credentials / "bob" / "token") in message
    assert "tunegate principals rotate bob" in message and "tunegate principals create bob" in message
    assert ADMIN_TOKEN not in message


def test_a_rotated_first_admin_token_wins_over_the_bootstrap_one(tmp_path: Path) -> None:
    store = CredentialStore(Settings(home=tmp_path / "home"))
    store.save_admin_token("tg_bootstrap")
    assert store.token("admin") == "tg_bootstrap" and store.token("root") is None
    store.save_token("admin", "tg_rotated")  # `principals rotate admin` keeps the new token in admin/token
    assert store.token("admin") == "tg_rotated"


def test_a_first_admin_with_another_name_is_recorded(tmp_path: Path) -> None:
    store = CredentialStore(Settings(home=tmp_path / "home"))
    store.save_admin_token("tg_ops", name="ops")
    assert store.first_admin_name() == "ops" and store.token("ops") == "tg_ops" and store.token("admin") is None
    assert store.token_paths("ops") == [store.principal_dir("ops") / "token", store.admin_token_path]


def test_the_store_files_cannot_be_principal_names(tmp_path: Path) -> None:
    store = CredentialStore(Settings(home=tmp_path / "home"))
    for name in (ADMIN_TOKEN, "admin.name"):  # the first admin's token, and whose it is
        with pytest.raises(CredentialError, match="pick another name"):
            store.principal_dir(name)


@pytest.mark.anyio
async def test_a_first_admin_bootstrapped_under_another_name_acts_under_it(cli_home: World) -> None:
    await cli_home.submit(make_spec())
    first_admin.open_bootstrap(cli_home.runtime.db, cli_home.settings, cli_home.clock())
    principals_cli.bootstrap_first_admin(Settings(), name="root")
    result = run("jobs", "cancel", "job_1", "--as", "root", "--reason", "not needed")
    assert result.exit_code == 0, result.stderr
    assert cli_home.state() == "cancelled"


def test_a_bad_job_id_is_the_error_before_any_credentials_are_looked_for(cli_home: World) -> None:
    for args in (("jobs", "cancel", "../etc", "--as", "nobody"), ("approve", "job/1", "--as", "nobody")):
        result = run(*args)
        assert result.exit_code == 2, result.stderr
        assert "job id" in said(result) and "no token" not in said(result)


def test_the_first_admins_tokens_follow_its_rotation_and_revocation(tmp_path: Path) -> None:
    """After a rotation, commands without --as went on sending the bootstrap token (revoked by the rotation);
    after a revocation, the bootstrap token stayed and was still sent."""
    store = CredentialStore(Settings(home=tmp_path))
    store.save_admin_token("tg_bootstrapped")
    assert store.admin_token() == "tg_bootstrapped"
    store.save_token("admin", "tg_rotated")
    assert store.admin_token() == "tg_rotated" and store.token("admin") == "tg_rotated"
    store.forget("admin")
    assert store.admin_token() is None and store.token("admin") is None
    assert not (tmp_path / "credentials" / ADMIN_TOKEN).exists()
