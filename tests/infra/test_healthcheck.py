"""The worker probe (infra/docker/healthcheck.py) against a real Redis and a real service process."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import REPO_ROOT, ServiceProcess

HEALTHCHECK = REPO_ROOT / "infra" / "docker" / "healthcheck.py"
PROBE_SERVICE = str(REPO_ROOT / "tests" / "bus" / "probe_service.py")
pytestmark = pytest.mark.integration


def probe(redis_url: str, home: Path, *args: str, service_env: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TUNEGATE_") and key != "SERVICE"}
    env.update({"TUNEGATE_REDIS_URL": redis_url, "TUNEGATE_HOME": str(home), "PYTHONPATH": str(REPO_ROOT)})
    if service_env is not None:
        env["SERVICE"] = service_env
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def running_service(tunegate_home: Path, redis_url: str) -> Iterator[ServiceProcess]:
    service = ServiceProcess(PROBE_SERVICE, tunegate_home, redis_url, service="probe")
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


def test_probe_follows_the_heartbeat_of_this_hosts_process(
    running_service: ServiceProcess, tunegate_home: Path, redis_url: str
) -> None:
    healthy = probe(redis_url, tunegate_home, "probe")
    assert healthy.returncode == 0, healthy.stderr
    assert f"probe-{socket.gethostname()}-{running_service.pid}" in healthy.stdout

    from_env = probe(redis_url, tunegate_home, service_env="probe")
    assert from_env.returncode == 0, from_env.stderr

    elsewhere = probe(redis_url, tunegate_home, "probe", "--host", "some-other-pod")
    assert elsewhere.returncode == 1
    assert "no heartbeat of service probe from host some-other-pod" in elsewhere.stderr

    other_service = probe(redis_url, tunegate_home, "scanner")
    assert other_service.returncode == 1 and "no heartbeat of service scanner" in other_service.stderr

    # Heartbeats are written every 2 s; one older than the allowed age means a wedged process.
    stale = probe(redis_url, tunegate_home, "probe", "--max-age", "0.000001")
    assert stale.returncode == 1 and "in the last" in stale.stderr


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tunegate_healthcheck", HEALTHCHECK)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_probe_fails_when_redis_is_unreachable(
    tunegate_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port once the socket is closed.
    monkeypatch.setenv("TUNEGATE_REDIS_URL", f"redis://127.0.0.1:{port}/0")
    assert load_healthcheck().main(["scanner"]) == 1
    assert "redis unreachable for service scanner" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no service given"),
        (["Scanner!"], "invalid service name 'Scanner!'"),
        (["scanner", "--max-age", "0"], "--max-age must be positive"),
    ],
)
def test_probe_rejects_bad_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    monkeypatch.delenv("SERVICE", raising=False)
    monkeypatch.setenv("TUNEGATE_REDIS_URL", "redis://127.0.0.1:1/0")
    assert load_healthcheck().main(args) == 2
    assert message in capsys.readouterr().err


def test_probe_works_with_the_permissions_of_a_service_redis_user(
    running_service: ServiceProcess, tunegate_home: Path, redis_url: str
) -> None:
    """In compose and Kubernetes the probe connects with its service's Redis user, which may not SCAN."""
    import dataclasses
    from urllib.parse import urlsplit, urlunsplit

    import redis

    from shared.bus.liveness import heartbeat_key
    from shared.roster import service
    from shared.stack.redis_acl import service_user

    real = service_user(service("scanner"))
    user = dataclasses.replace(real, name="probe", keys=(heartbeat_key("probe", "*"),))
    words = user.acl_line("probe-password").split()
    admin = redis.Redis.from_url(redis_url)
    try:
        admin.execute_command("ACL", "SETUSER", *words[1:])
    finally:
        admin.close()
    parts = urlsplit(redis_url)
    as_user = urlunsplit(parts._replace(netloc=f"probe:probe-password@{parts.hostname}:{parts.port}"))
    client = redis.Redis.from_url(as_user)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.scan()
    finally:
        client.close()
    healthy = probe(as_user, tunegate_home, "probe")
    assert healthy.returncode == 0, healthy.stderr
    assert f"probe-{socket.gethostname()}-{running_service.pid}" in healthy.stdout
