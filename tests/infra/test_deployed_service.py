"""A real service started with exactly what a deployment gives it: its Redis user from the generated env file,
Redis on the shipped config with the generated ACL file, and a keys directory laid out as compose's
install-secrets and the Kubernetes mounts lay it out (its own signing key, everyone's public keys)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from services.cli.secrets import SecretsLayout, redis_url_variable
from tests.infra.conftest import read_env_file, shipped_redis
from tests.support import REPO_ROOT, ServiceProcess

pytestmark = pytest.mark.integration

# audit consumes every stream (the widest service user); the registry also serves HTTP. Neither loads
# Presidio or torch, which keeps this test short; the scanner and trainer users are built the same way.
SERVICES_STARTED = ("audit", "registry")


def deployed_keys_dir(secrets_dir: Path, service: str, target: Path) -> Path:
    layout = SecretsLayout(secrets_dir)
    (target / "signing").mkdir(parents=True)
    shutil.copy2(layout.keys_dir / "signing" / f"{service}.key", target / "signing" / f"{service}.key")
    shutil.copytree(layout.keys_dir / "trust", target / "trust")
    return target


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}


@pytest.mark.parametrize("service_name", SERVICES_STARTED)
def test_service_runs_on_its_own_redis_user_and_read_only_keys(
    tmp_path: Path, tunegate_home: Path, secrets_dir: Path, service_name: str
) -> None:
    env = read_env_file(SecretsLayout(secrets_dir).env_file)
    keys_dir = deployed_keys_dir(secrets_dir, service_name, tmp_path / "keys")
    before = snapshot(keys_dir)
    home = tunegate_home
    with shipped_redis(tmp_path, "--aclfile", str(SecretsLayout(secrets_dir).acl_file)) as port:
        generated = urlsplit(env[redis_url_variable(service_name)])
        url = generated._replace(netloc=f"{generated.username}:{generated.password}@127.0.0.1:{port}").geturl()
        service = ServiceProcess(f"services.{service_name}", home, url, extra_env={"TUNEGATE_KEYS_DIR": str(keys_dir)})
        try:
            service.wait_ready(timeout_s=120)
            probe = subprocess.run(
                [
                    sys.executable,
                    str(REPO_ROOT / "infra" / "docker" / "healthcheck.py"),
                    service_name,
                    "--max-age",
                    "30",
                ],
                env={"TUNEGATE_REDIS_URL": url, "TUNEGATE_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert probe.returncode == 0, f"{probe.stderr}\n{service.log()[-3000:]}"
            assert service.process.poll() is None, service.log()[-3000:]
        finally:
            service.stop()
    assert "NOPERM" not in service.log(), service.log()[-3000:]
    assert snapshot(keys_dir) == before, "the keys are mounted read-only: the service must not write there"
