"""`tunegate secrets generate DIR`: what a compose or Kubernetes deployment is given instead of default passwords."""

from __future__ import annotations

import hashlib
import shutil
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import yaml
from typer.testing import CliRunner

from services.cli.secrets import (
    DATABASE_ENV_FILE,
    POSTGRES_PASSWORD_VARIABLE,
    REDIS_PROBE_PASSWORD_VARIABLE,
    SECRETS_DIR_VARIABLE,
    SecretsLayout,
    redis_url_variable,
    secrets_app,
)
from shared.roster import service_names
from shared.security.keys import key_id_for, public_key_pem, read_private_key
from shared.security.signing import KeyDirectory
from shared.stack.redis_acl import OPERATOR, RedisCredentials, users
from tests.infra.conftest import read_env_file, shipped_redis

URL_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def run_generate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(secrets_app, ["generate", *args])
    return result.exit_code, result.output


def every_secret(root: Path) -> list[str]:
    """Every password and private key under a generated directory, as text that must never be printed."""
    layout = SecretsLayout(root)
    found = [path.read_text().strip() for path in (layout.redis_dir / "credentials").iterdir()]
    found.append(read_env_file(layout.env_file)[POSTGRES_PASSWORD_VARIABLE])
    for key_file in (layout.keys_dir / "signing").iterdir():
        pem_lines = key_file.read_text().splitlines()
        found.extend(line for line in pem_lines if not line.startswith("-----"))
    return found


def test_generate_writes_private_files_and_prints_no_secret(tmp_path: Path) -> None:
    root = tmp_path / "deploy" / "secrets"
    code, output = run_generate(str(root))
    assert code == 0, output
    paths = [root, *root.rglob("*")]
    assert len(paths) > 10
    for path in paths:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} is {oct(mode)}"
    secrets = every_secret(root)
    assert len(secrets) == len(users()) + 1 + len(service_names())
    for secret in secrets:
        assert len(secret) >= 32
        assert secret not in output, "a secret was printed"
    assert str(root / ".env") in output, "the operator is told where the secrets are"


def test_env_file_gives_each_service_its_own_redis_user(secrets_dir: Path) -> None:
    env = read_env_file(secrets_dir / ".env")
    credentials = RedisCredentials(secrets_dir / "redis")
    assert env[SECRETS_DIR_VARIABLE] == str(secrets_dir.resolve())
    assert set(env[POSTGRES_PASSWORD_VARIABLE]) <= URL_SAFE, "embedded in a connection URL"
    assert env[REDIS_PROBE_PASSWORD_VARIABLE] == credentials.password(OPERATOR)
    passwords = set()
    for name in service_names():
        url = urlsplit(env[redis_url_variable(name)])
        assert (url.scheme, url.hostname, url.port, url.path) == ("redis", "redis", 6379, "/0"), name
        assert url.username == name, f"{name} must connect as its own Redis user"
        assert url.password == credentials.password(name), name
        assert set(url.password) <= URL_SAFE, name
        passwords.add(url.password)
    assert len(passwords) == len(service_names()), "no two services share a password"
    expected = {SECRETS_DIR_VARIABLE, POSTGRES_PASSWORD_VARIABLE, REDIS_PROBE_PASSWORD_VARIABLE}
    assert set(env) == expected | {redis_url_variable(name) for name in service_names()}


def test_acl_file_holds_every_user_hashed_and_default_off(secrets_dir: Path) -> None:
    layout = SecretsLayout(secrets_dir)
    credentials = RedisCredentials(layout.redis_dir)
    lines = layout.acl_file.read_text().splitlines()
    by_user = {line.split()[1]: line for line in lines}
    assert by_user.keys() == {"default"} | {user.name for user in users()}
    assert by_user.keys() >= set(service_names())
    assert by_user["default"].split()[2] == "off", "the default user must be disabled"
    acl_text = layout.acl_file.read_text()
    for user in users():
        password = credentials.password(user.name)
        assert password and password not in acl_text, f"{user.name}: only the hash belongs in the ACL file"
        assert by_user[user.name] == user.acl_line(password)
        assert f"#{hashlib.sha256(password.encode()).hexdigest()}" in by_user[user.name]


def test_keys_tree_has_each_service_key_and_its_public_key(secrets_dir: Path) -> None:
    keys = KeyDirectory(secrets_dir / "keys")
    key_ids = set()
    for name in service_names():
        private = read_private_key(secrets_dir / "keys" / "signing" / f"{name}.key")
        key_id = key_id_for(private.public_key())
        assert keys.existing_signer(name).key_id == key_id
        assert set(keys.public_keys(name)) == {key_id}, f"{name}: trust dir holds exactly its current key"
        trusted = (secrets_dir / "keys" / "trust" / name / f"{key_id}.pub").read_text()
        assert trusted == public_key_pem(private.public_key())
        key_ids.add(key_id)
    assert len(key_ids) == len(service_names())
    assert sorted(path.stem for path in (secrets_dir / "keys" / "signing").iterdir()) == sorted(service_names())


def test_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    root = tmp_path / "secrets"
    assert run_generate(str(root))[0] == 0
    before = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}

    code, output = run_generate(str(root))
    assert code == 1
    assert "already holds secrets" in output and "--force" in output
    assert {path: path.read_bytes() for path in root.rglob("*") if path.is_file()} == before

    code, output = run_generate(str(root), "--force")
    assert code == 0, output
    after_env = read_env_file(root / ".env")
    (tmp_path / "before.env").write_bytes(before[root / ".env"])
    before_env = read_env_file(tmp_path / "before.env")
    for name in service_names():
        assert after_env[redis_url_variable(name)] != before_env[redis_url_variable(name)], name
        key_file = root / "keys" / "signing" / f"{name}.key"
        assert key_file.read_bytes() != before[key_file], name
    assert len(list((root / "keys" / "trust" / "audit").glob("*.pub"))) == 1, "old keys are gone, not trusted"


def test_refuses_a_file_in_place_of_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    code, output = run_generate(str(target))
    assert code == 1 and "not a directory" in output and "Traceback" not in output


@pytest.mark.parametrize("name", ["a:b", "cost$HOME", "x#y"])
def test_refuses_a_directory_name_compose_would_misread(tmp_path: Path, name: str) -> None:
    code, output = run_generate(str(tmp_path / name))
    assert code == 1 and "choose another directory" in output and "Traceback" not in output
    assert not (tmp_path / name).exists()


def test_kustomization_references_only_generated_files(secrets_dir: Path) -> None:
    document = yaml.safe_load((secrets_dir / "kustomization.yaml").read_text())
    assert document["generatorOptions"]["disableNameSuffixHash"] is True, "infra/k8s refers to plain names"
    sources = []
    for generator in [*document["secretGenerator"], *document["configMapGenerator"]]:
        sources += [entry.split("=", 1)[-1] for entry in generator.get("files", [])]
    assert sources
    for source in sources:
        assert (secrets_dir / source).is_file(), source
    envs = [env for generator in document["secretGenerator"] for env in generator.get("envs", [])]
    assert envs == [DATABASE_ENV_FILE], "only the database URL is the operator's to provide"


def test_kustomize_builds_the_generated_directory(tmp_path: Path, secrets_dir: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the kustomization is checked structurally only")
    copy = tmp_path / "secrets"
    shutil.copytree(secrets_dir, copy)
    missing = subprocess.run([kubectl, "kustomize", str(copy)], capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and DATABASE_ENV_FILE in missing.stderr, "a missing database URL must stop it"
    (copy / DATABASE_ENV_FILE).write_text("TUNEGATE_DATABASE_URL=postgresql://tunegate:pw@db.example:5432/tunegate\n")
    built = subprocess.run([kubectl, "kustomize", str(copy)], capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    objects = {(doc["kind"], doc["metadata"]["name"]) for doc in yaml.safe_load_all(built.stdout)}
    for name in service_names():
        assert ("Secret", f"tunegate-{name}") in objects and ("ConfigMap", f"tunegate-trust-{name}") in objects
    assert ("Secret", "redis-acl") in objects and ("Secret", "tunegate-database") in objects


def test_real_redis_loads_the_acl_file_and_refuses_the_default_user(tmp_path: Path, secrets_dir: Path) -> None:
    layout = SecretsLayout(secrets_dir)
    env = read_env_file(layout.env_file)
    with shipped_redis(tmp_path, "--aclfile", str(layout.acl_file)) as port:
        anonymous = redis.Redis(port=port, socket_timeout=2)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        probe = redis.Redis(port=port, username=OPERATOR, password=env[REDIS_PROBE_PASSWORD_VARIABLE])
        assert probe.ping(), "the Redis healthcheck authenticates as the operator user"
        probe.close()
        for name in service_names():
            url = urlsplit(env[redis_url_variable(name)])
            client = redis.Redis(port=port, username=url.username, password=url.password, socket_timeout=2)
            assert client.ping(), name
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.flushall()
            client.close()
        wrong = redis.Redis(port=port, username="scanner", password=env[REDIS_PROBE_PASSWORD_VARIABLE])
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
        wrong.close()


def test_kustomization_refresh_after_a_rotation_lists_old_and_new_public_keys(tmp_path: Path) -> None:
    root = tmp_path / "secrets"
    assert run_generate(str(root))[0] == 0
    old_key_id = KeyDirectory(root / "keys").existing_signer("scanner").key_id
    new_key_id = KeyDirectory(root / "keys").rotate("scanner").key_id

    result = CliRunner().invoke(secrets_app, ["kustomization", str(root)])
    assert result.exit_code == 0, result.output
    document = yaml.safe_load((root / "kustomization.yaml").read_text())
    trust = next(item for item in document["configMapGenerator"] if item["name"] == "tunegate-trust-scanner")
    assert sorted(trust["files"]) == sorted(f"keys/trust/scanner/{kid}.pub" for kid in (old_key_id, new_key_id))
    for path in [root, *root.rglob("*")]:
        assert stat.S_IMODE(path.lstat().st_mode) == (0o700 if path.is_dir() else 0o600), path

    missing = CliRunner().invoke(secrets_app, ["kustomization", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "tunegate secrets generate" in missing.output
