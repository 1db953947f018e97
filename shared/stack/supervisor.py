"""`tunegate up` / `down` / `status`: start Redis and every service as background processes, and stop
exactly what was started (pids are recorded with their start times, so a reused pid is never killed)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis

from shared.bus.groups import group_name
from shared.bus.liveness import ready_file_name
from shared.config import Settings
from shared.events.streams import ALL_STREAMS, dlq_name
from shared.roster import service, service_names
from shared.security.keys import write_secret
from shared.security.signing import KeyDirectory
from shared.stack.redis_acl import ADMIN, RedisCredentials
from shared.stack.redis_server import EmbeddedRedis
from shared.storage.private import PRIVATE_UMASK, open_private_append, private_dir

SERVICES: tuple[str, ...] = service_names()
"""Services `tunegate up` starts, in roster order (the audit ledger first so it sees everything)."""


MAX_REPLICAS = 16
"""A bound on `tunegate up --replicas`: one machine's processes, not a cluster (that is infra/)."""


class SupervisorError(RuntimeError):
    pass


@dataclass
class ProcessRecord:
    name: str
    pid: int
    create_time: float
    command: list[str]
    log: str
    replica: int = 1
    """1..N among the service's processes (`tunegate up --replicas N`); they share one consumer group."""

    @property
    def key(self) -> str:
        """The record's file stem: the service's name for its first process, `<name>-<replica>` after."""
        return self.name if self.replica == 1 else f"{self.name}-{self.replica}"

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return abs(proc.create_time() - self.create_time) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home_dir
        self.run_dir = self.home / "run"
        self.log_dir = self.home / "logs"

    # ------------------------------------------------------------- records

    def _record_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid.json"

    def _write_record(self, record: ProcessRecord) -> None:
        target = self.settings.path("run", self._record_path(record.key).name)  # home and run/ owner-only
        write_secret(target, json.dumps(record.__dict__).encode("utf-8"))

    def records(self) -> dict[str, ProcessRecord]:
        """Every started process by its key: `redis`, `<service>`, `<service>-2`, ..."""
        found = {}
        for path in sorted(self.run_dir.glob("*.pid.json")) if self.run_dir.exists() else []:
            record = ProcessRecord(**json.loads(path.read_text()))
            found[record.key] = record
        return found

    def replicas_of(self, name: str) -> list[ProcessRecord]:
        return sorted((r for r in self.records().values() if r.name == name), key=lambda r: r.replica)

    # ------------------------------------------------------------- up

    def redis_url(self) -> str:
        """As the administrator (status reads every group); an external URL is used as given."""
        return self.settings.resolved_redis_url(ADMIN)

    def start_redis(self) -> str | None:
        """Start the embedded Redis, or bring it back after a crash on the same port with the same AOF,
        so running services reconnect to the address they know."""
        if self.settings.redis_url:
            return None
        redis_dir = self.home / "redis"
        existing = self.records().get("redis")
        url_file = redis_dir / "url"
        if existing and existing.alive() and url_file.exists():
            return url_file.read_text().strip()
        private_dir(redis_dir)
        credentials = RedisCredentials(redis_dir)
        acl_file = credentials.ensure()
        port_file = redis_dir / "port"
        port = int(port_file.read_text()) if port_file.exists() else 0
        server = EmbeddedRedis(redis_dir, port=port, acl_file=acl_file, admin_password=credentials.password(ADMIN))
        url = server.start(detach=True)
        port_file.write_text(str(server.port))
        assert server.process is not None
        proc = psutil.Process(server.process.pid)
        self._write_record(
            ProcessRecord(
                "redis", proc.pid, proc.create_time(), server.command(), str(self.home / "redis" / "redis.log")
            )
        )
        write_secret(url_file, url.encode("utf-8"))
        return url

    def _service_env(self) -> dict[str, str]:
        # An embedded Redis is not named here: each service finds it with its own credentials.
        env = dict(os.environ)
        env["TUNEGATE_HOME"] = str(self.home)
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_service(self, name: str, replica: int = 1) -> ProcessRecord:
        key = ProcessRecord(name, 0, 0.0, [], "", replica).key
        existing = self.records().get(key)
        if existing and existing.alive():
            return existing
        log_path = self.settings.path("logs", f"{key}.log")
        command = [sys.executable, "-m", f"services.{name}"]
        with open_private_append(log_path) as log_file:
            proc = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._service_env(),
                start_new_session=True,
                umask=PRIVATE_UMASK,  # databases, ready files, keys, traces the service writes: owner-only
            )
        record = ProcessRecord(name, proc.pid, psutil.Process(proc.pid).create_time(), command, str(log_path), replica)
        self._write_record(record)
        return record

    def _ready_file(self, record: ProcessRecord) -> Path:
        return self.run_dir / ready_file_name(record.name, socket.gethostname(), record.pid)

    def wait_ready(self, record: ProcessRecord, timeout_s: float = 120.0) -> None:
        ready = self._ready_file(record)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready.exists():
                return
            if not record.alive():
                tail = Path(record.log).read_text(errors="replace")[-3000:] if Path(record.log).exists() else ""
                raise SupervisorError(f"service {record.name} exited before it was ready; log tail:\n{tail}")
            time.sleep(0.1)
        raise SupervisorError(f"service {record.name} not ready after {timeout_s}s (log: {record.log})")

    def up(self, services: tuple[str, ...] = SERVICES, timeout_s: float = 120.0, replicas: int = 1) -> dict[str, Any]:
        """Start Redis and `replicas` processes of each service (one consumer group per service: each event
        goes to one of them; the trainer and evaluator coordinate jobs by their leases)."""
        if not 1 <= replicas <= MAX_REPLICAS:
            raise SupervisorError(f"replicas must be 1..{MAX_REPLICAS}, not {replicas}")
        url = self.start_redis() or self.settings.redis_url
        keys = KeyDirectory(self.settings.keys_dir)
        for name in services:
            keys.signer(name)  # each service's signing key, 0600, before anything is published
        started = [self.start_service(name, replica) for name in services for replica in range(1, replicas + 1)]
        for record in started:
            self.wait_ready(record, timeout_s)
        pids: dict[str, list[int]] = {}
        for record in started:
            pids.setdefault(record.name, []).append(record.pid)
        return {"redis_url": redact_url(url) if url else url, "services": pids}

    # ------------------------------------------------------------- down

    def _terminate(self, record: ProcessRecord, timeout_s: float) -> bool:
        if not record.alive():
            return False
        try:
            os.killpg(record.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and record.alive():
            time.sleep(0.1)
        if record.alive():
            os.kill(record.pid, signal.SIGKILL)
        return True

    def down(self, timeout_s: float = 20.0) -> list[str]:
        stopped = []
        records = self.records()
        for key, record in records.items():
            if key == "redis":
                continue
            if self._terminate(record, timeout_s):
                stopped.append(key)
            self._record_path(key).unlink(missing_ok=True)
        if "redis" in records:
            if self._terminate(records["redis"], timeout_s):
                stopped.append("redis")
            self._record_path("redis").unlink(missing_ok=True)
            (self.home / "redis" / "url").unlink(missing_ok=True)
        return stopped

    # ------------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        records = self.records()
        report: dict[str, Any] = {"home": str(self.home), "redis": {}, "services": {}, "streams": {}}
        redis_record = records.get("redis")
        try:
            url = self.redis_url()
        except RuntimeError as exc:
            report["redis"] = {"reachable": False, "error": str(exc)}
            url = None
        client = redis.Redis.from_url(url, socket_connect_timeout=1) if url else None
        heartbeats: dict[str, list[dict[str, Any]]] = {}
        if client is not None:
            try:
                client.ping()
                report["redis"] = {
                    "url": redact_url(url),
                    "reachable": True,
                    "embedded": bool(redis_record),
                    "pid": redis_record.pid if redis_record else None,
                }
                for key in client.scan_iter("tunegate:heartbeat:*"):
                    raw = client.get(key)
                    if raw:
                        beat = json.loads(raw)
                        heartbeats.setdefault(beat["service"], []).append(beat)
                for stream in ALL_STREAMS:
                    report["streams"][stream.value] = {
                        "length": client.xlen(stream.value),
                        "dead_letters": client.xlen(dlq_name(stream.value)),
                    }
            except redis.RedisError as exc:
                report["redis"] = {"url": redact_url(url), "reachable": False, "error": str(exc)}
                client = None
        for name in SERVICES:
            started = [r for r in records.values() if r.name == name]
            record = records.get(name)
            alive = bool(started) and all(r.alive() for r in started)
            replicas = heartbeats.get(name, [])
            entry: dict[str, Any] = {
                "pid": record.pid if record else None,
                "pids": [r.pid for r in sorted(started, key=lambda r: r.replica)],
                "alive": alive,
                # A ready file outlives a SIGKILLed process: ready means alive too.
                "ready": alive and all(self._ready_file(r).exists() for r in started),
                "replicas": replicas,
                "lag": {},
                "pending": {},
                "dead_letters": 0,
                "problems": [],
            }
            for started_record in sorted(started, key=lambda r: r.replica):
                if not started_record.alive():
                    entry["problems"].append(f"process {started_record.pid} is gone (log: {started_record.log})")
                elif client is not None and not any(r.get("pid") == started_record.pid for r in replicas):
                    entry["problems"].append(
                        f"no heartbeat in Redis for process {started_record.pid}: it cannot reach Redis"
                    )
            if client is not None:
                for stream in _streams_of(name):
                    lag, pending = _group_lag(client, stream, group_name(name))
                    entry["lag"][stream] = lag
                    entry["pending"][stream] = pending
                    entry["dead_letters"] += _dlq_count(client, stream, group_name(name))
            report["services"][name] = entry
        if client is not None:
            client.close()
        started = [e for e in report["services"].values() if e["pids"]]
        report["healthy"] = bool(report["redis"].get("reachable")) and all(
            e["alive"] and e["ready"] and not e["problems"] for e in started
        )
        return report


def redact_url(url: str) -> str:
    """A Redis URL without its user and password, for output and logs."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def _streams_of(name: str) -> list[str]:
    return service(name).streams()


def _group_lag(client: redis.Redis, stream: str, group: str) -> tuple[int | None, int]:
    try:
        for info in client.xinfo_groups(stream):
            name = info.get("name")
            if name in (group, group.encode()):
                return info.get("lag"), int(info.get("pending", 0))
    except redis.ResponseError:
        pass
    return None, 0


def _dlq_count(client: redis.Redis, stream: str, group: str) -> int:
    count = 0
    try:
        for _id, fields in client.xrange(dlq_name(stream)):
            if fields.get(b"group") == group.encode():
                count += 1
    except redis.ResponseError:
        return 0
    return count
