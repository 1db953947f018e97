"""Helpers for integration tests: service processes, waiting, reading streams."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from shared.bus.liveness import ready_file_name
from shared.bus.publisher import Publisher
from shared.bus.wire import body_of
from shared.config import Settings
from shared.events.envelope import Envelope
from shared.security.signing import KeyDirectory

REPO_ROOT = Path(__file__).resolve().parents[1]

TEST_DATABASE_VARIABLE = "TUNEGATE_TEST_DATABASE_URL"

FAST_BUS_ENV = {
    "TUNEGATE_RECLAIM_IDLE_MS": "1000",
    "TUNEGATE_RECLAIM_INTERVAL_S": "0.3",
    "TUNEGATE_GROUP_CHECK_INTERVAL_S": "0.5",
    "TUNEGATE_MAX_DELIVERIES": "3",
    "TUNEGATE_READ_BLOCK_MS": "100",
}


class ServiceProcess:
    """A real service process (`python -m services.<name>` or a test module path) with its log file."""

    def __init__(
        self,
        target: str,
        home: Path,
        redis_url: str,
        extra_env: dict[str, str] | None = None,
        service: str | None = None,
    ) -> None:
        self.target = target
        self.home = home
        env = dict(os.environ)
        env.update(FAST_BUS_ENV)
        env.update(
            {
                "TUNEGATE_HOME": str(home),
                "TUNEGATE_REDIS_URL": redis_url,
                "PYTHONPATH": str(REPO_ROOT),
                "PYTHONUNBUFFERED": "1",
                "HF_HUB_OFFLINE": "1",
            }
        )
        env.update(extra_env or {})
        command = [sys.executable, target] if target.endswith(".py") else [sys.executable, "-m", target]
        name = service or (Path(target).stem if target.endswith(".py") else target.rsplit(".", 1)[-1])
        self.name = name
        self.log_path = home / "logs" / f"{name}-{time.monotonic_ns()}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        ready = self.home / "run" / ready_file_name(self.name, socket.gethostname(), self.pid)
        wait_for(
            lambda: ready.exists() or self.process.poll() is not None, timeout_s, f"{self.name} ready"
        )
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited early:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def keys(home: Path | None = None) -> KeyDirectory:
    """The key directory the services of a test home use (TUNEGATE_HOME when no home is given)."""
    return KeyDirectory(home / "keys" if home is not None else Settings().keys_dir)


def sign(envelope: Envelope, home: Path | None = None) -> Envelope:
    """Sign as the envelope's producer, as that service would (tests publish in the services' names)."""
    return keys(home).signer(envelope.producer).sign(envelope)


def publish_signed(url: str, *envelopes: Envelope, home: Path | None = None) -> None:
    """Publish envelopes, each signed by its producer's key from the test home."""
    signed = [sign(envelope, home) for envelope in envelopes]

    async def run() -> None:
        async with Publisher(url, keys(home).signer(signed[0].producer)) as publisher:
            for envelope in signed:
                await publisher.publish(envelope)

    if signed:
        asyncio.run(run())


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def read_stream(client: redis.Redis, stream: str) -> list[Envelope]:
    return [Envelope.from_wire(body_of(fields)) for _id, fields in client.xrange(stream)]


def read_dlq(client: redis.Redis, stream: str) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
        for _id, fields in client.xrange(f"{stream}.dlq")
    ]


def capture_spans() -> Any:
    """An in-memory exporter receiving this process's spans from now on, whichever tracer provider is
    installed (OpenTelemetry allows setting the global provider only once per process)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def service_rows(
    home: Path, service: str, sql: str, params: dict[str, Any] | None = None, *, before_tables: bool = False
) -> list[tuple[Any, ...]]:
    """Rows of a query on a service's own database, whichever it is (its SQLite file under home/db, or
    TUNEGATE_DATABASE_URL's PostgreSQL): tests look at what a service recorded the way the service stores it.
    `before_tables`: the service may not have created its tables yet; that reads as no rows."""
    from sqlalchemy import create_engine, exc, text

    from shared.storage.db import normalise_url

    engine = create_engine(normalise_url(Settings(home=home).database_url_for(service)))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params or {})]
    except exc.DBAPIError as error:
        # Only a missing table is "no rows yet" (SQLite: "no such table"; PostgreSQL: SQLSTATE 42P01); any other
        # error, a lost connection included, is the test's to see.
        missing = "no such table" in str(error.orig) or getattr(error.orig, "sqlstate", None) == "42P01"
        if before_tables and missing:
            return []
        raise
    finally:
        engine.dispose()


# ------------------------------------------------------------------ PostgreSQL schemas

def postgres_test_url() -> str | None:
    """The PostgreSQL the PostgreSQL variants run against (CI's .ci/run sets it when one answers), or None."""
    return os.environ.get(TEST_DATABASE_VARIABLE) or None


def schema_url(base: str, schema: str) -> str:
    """`base` with every connection's search_path set to `schema`: the services' unqualified table names then
    land in it, so each test gets an empty database of its own on one server."""
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


def create_schema(base: str, prefix: str) -> str:
    """Create a fresh uniquely named schema in the database at `base`; returns its name."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


def drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def postgres_schema(base: str, prefix: str) -> Iterator[str]:
    """A fresh schema in `base` for the block, as a URL whose connections use it; dropped afterwards, also when
    the block fails (stop the processes using it first: a transaction left open would hold the drop)."""
    schema = create_schema(base, prefix)
    try:
        yield schema_url(base, schema)
    finally:
        drop_schema(base, schema)


@contextmanager
def service_database_env(prefix: str) -> Iterator[dict[str, str]]:
    """The environment that puts a test's service processes on PostgreSQL when TUNEGATE_TEST_DATABASE_URL is set
    (a fresh schema, dropped afterwards), and an empty one otherwise: services then keep their SQLite files.
    For fixtures that cannot use `tunegate_home` (module-scoped homes)."""
    base = postgres_test_url()
    if base is None:
        yield {}
        return
    with postgres_schema(base, prefix) as url:
        yield {"TUNEGATE_DATABASE_URL": url}
