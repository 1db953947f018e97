"""Fixtures of the deployment tests: a generated secrets directory and Redis started as the deployments start it."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

REPO = Path(__file__).resolve().parents[2]
REDIS_CONF = REPO / "infra" / "redis" / "redis.conf"


@pytest.fixture(scope="session")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `tunegate secrets generate` output shared by the tests that only read it."""
    from services.cli.secrets import generate_secrets

    return generate_secrets(tmp_path_factory.mktemp("deployment") / "secrets").root


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose env file; comments and blank lines skipped."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def shipped_redis(workdir: Path, *extra_args: str) -> Iterator[int]:
    """redis-server with infra/redis/redis.conf as shipped (plus `extra_args`, as compose and k8s pass them),
    on a private loopback port; yields the port. Skips without a Redis 7 binary."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed: the config is checked structurally only")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    major = re.search(r"v=(\d+)", version)
    if not major or int(major.group(1)) < 7:
        pytest.skip(f"redis.conf targets Redis 7, found {version.strip()}")
    port = free_port()
    # Redis chdirs to `dir` while reading the file (before command-line overrides apply), so only that
    # line is pointed at a temp dir; network moves to a private loopback port; the rest runs as shipped.
    text = REDIS_CONF.read_text()
    conf = workdir / "redis.conf"
    conf.write_text(re.sub(r"(?m)^dir .*$", f"dir {workdir}", text))
    assert conf.read_text() != text, "redis.conf must set dir explicitly"
    process = subprocess.Popen(
        [binary, str(conf), *extra_args, "--port", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"redis-server refused infra/redis/redis.conf {' '.join(extra_args)}:\n{output}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    reply = sock.recv(64)
                if not reply.startswith(b"-LOADING"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("redis-server did not answer within 15 s")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture()
def redis_server(tmp_path: Path) -> Iterator[redis.Redis]:
    """The shipped config with no users: what the structural redis.conf tests need."""
    with shipped_redis(tmp_path) as port:
        client = redis.Redis(port=port, socket_timeout=2)
        try:
            yield client
        finally:
            client.close()
