"""Ledger ingest benchmark: publish -> Redis stream -> audit service -> committed, signed-over entry.

    .venv/bin/python bench/ledger_ingest.py [--seconds 60] [--rate 1000] [--latency-seconds 20]

Everything runs for real: an embedded Redis with AOF, the audit service as its own process, a publisher
in this process (pipelined FastStream publishes, each event signed by its producer's key). Four phases
in one run:

1. baseline: the same bus path with a no-op batch handler (a service process that authenticates, acks
   and records nothing), flat out, so the ledger's cost is printed as a ratio against the transport;
2. sustained: the audit service, publisher flat out for --seconds; the rate is the growth of the SIGNED
   tree size over the window (an entry counts once a signed tree head covers it);
3. unsigned (--unsigned-seconds, 0 to skip): the same audit service with envelope signing on publish and
   authentication on receipt switched off (possible only from this script: the product has no such
   switch), so the cost of signed events is printed as a ratio measured in the same run;
4. latency: publisher paced at --rate events/s for --latency-seconds; latency of an event = timestamp of
   the first signed tree head covering its entry - the event's occurred_at (set at publish time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from services.audit.application import open_store  # noqa: E402
from shared.bus.definition import ServiceDefinition  # noqa: E402
from shared.bus.lifecycle import ServiceRuntime, run_service  # noqa: E402
from shared.bus.liveness import ready_file_name  # noqa: E402
from shared.bus.publisher import Publisher  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.events.envelope import Envelope  # noqa: E402
from shared.roster import ServiceSpec  # noqa: E402
from shared.security.signing import KeyDirectory  # noqa: E402
from shared.stack.redis_server import EmbeddedRedis  # noqa: E402

BATCH = 500


def event(i: int, tag: str) -> Envelope:
    return Envelope(
        type="job.state_changed",
        producer="registry",
        actor=f"user-{i % 97}@example.com",
        subject=f"{tag}_{i:09d}",
        payload={"job_id": f"{tag}_{i:09d}", "from_state": "scanning", "to_state": "awaiting_approval", "reason": ""},
    )


def start_process(args: list[str], home: Path, url: str, log_name: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, TUNEGATE_HOME=str(home), TUNEGATE_REDIS_URL=url, PYTHONPATH=str(REPO))
    env.setdefault("TUNEGATE_READ_BATCH", "1000")
    env.setdefault("TUNEGATE_LOG_LEVEL", "WARNING")
    home.mkdir(parents=True, exist_ok=True)
    log = (home / f"{log_name}.log").open("wb")
    return subprocess.Popen([sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def wait_ready(home: Path, service: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (home / "run" / ready_file_name(service, socket.gethostname(), proc.pid)).exists():
            return
        if proc.poll() is not None:
            raise SystemExit(f"{service} exited early; see {home}/{service}.log")
        time.sleep(0.1)
    raise SystemExit(f"{service} not ready after {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


class AcceptEverything:
    """Phase 3 only: authentication switched off, to price it."""

    def check(self, envelope: Envelope) -> None:
        return None


class UnsignedPublisher(Publisher):
    def _prepare(self, envelope: Envelope) -> Envelope:
        return envelope


def publisher_for(url: str, home: Path, signed: bool = True) -> Publisher:
    signer = KeyDirectory(Settings(home=home).keys_dir).signer("registry")
    return Publisher(url, signer) if signed else UnsignedPublisher(url, signer)


async def publish_flat_out(url: str, home: Path, seconds: float, tag: str, signed: bool = True) -> int:
    sent = 0
    deadline = time.monotonic() + seconds
    async with publisher_for(url, home, signed) as publisher:
        while time.monotonic() < deadline:
            await publisher.publish_many([event(sent + k, tag) for k in range(BATCH)])
            sent += BATCH
    return sent


async def publish_paced(url: str, home: Path, rate: int, seconds: float, tag: str) -> int:
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    sent = 0
    start = time.monotonic()
    async with publisher_for(url, home) as publisher:
        while (now := time.monotonic()) - start < seconds:
            due = int((now - start) / tick) + 1
            while sent < due * per_tick:
                await publisher.publish_many([event(sent + k, tag) for k in range(per_tick)])
                sent += per_tick
            await asyncio.sleep(max(0.0, start + due * tick - time.monotonic()))
    return sent


def acked(client: redis.Redis, group: str) -> int:
    info = next(g for g in client.xinfo_groups("tunegate.jobs") if g["name"] == group.encode())
    return int(info["entries-read"] or 0) - int(info["pending"])


def run_noop_service() -> None:
    async def drop(runtime: ServiceRuntime, envelopes: list[Envelope]) -> None:
        return None

    noop = ServiceSpec(name="noop", summary="bench baseline", consumes=("job.state_changed",), emits=())
    run_service(lambda settings: ServiceDefinition(name="noop", batch_handler=drop, spec=noop))


def run_unauthenticated_audit() -> None:
    from services.audit.bootstrap import build

    run_service(build, authenticator=AcceptEverything())  # type: ignore[arg-type]


def baseline(url: str, home: Path, seconds: float) -> float:
    proc = start_process([__file__, "--noop-service"], home, url, "noop")
    try:
        wait_ready(home, "noop", proc)
        client = redis.Redis.from_url(url)
        start_acked, t0 = acked(client, "tunegate-noop"), time.monotonic()
        asyncio.run(publish_flat_out(url, home, seconds, "base"))
        end_acked, t1 = acked(client, "tunegate-noop"), time.monotonic()
        return (end_acked - start_acked) / (t1 - t0)
    finally:
        stop(proc)


def signed_heads(settings: Settings) -> list[tuple[int, datetime]]:
    store = open_store(settings, create=False)
    try:
        with store.read() as conn:
            return [(h.tree_size, h.issued_at()) for h in store.all_heads(conn)]
    finally:
        store.db.dispose()


def size_signed_by(heads: list[tuple[int, datetime]], moment: datetime) -> int:
    sizes = [size for size, at in heads if at <= moment]
    return max(sizes, default=0)


def sustained(url: str, home: Path, seconds: float, signed: bool) -> tuple[int, float, float]:
    """Flat-out publishing into a fresh audit service; (sent, duration, signed ledger entries/s)."""
    redis.Redis.from_url(url).delete("tunegate.jobs", "tunegate.bus")  # the audit group starts at id 0
    settings = Settings(home=home)
    args = ["-m", "services.audit"] if signed else [__file__, "--unauthenticated-audit"]
    audit = start_process(args, home, url, "audit")
    try:
        wait_ready(home, "audit", audit)
        window_start = datetime.now().astimezone()
        sent = asyncio.run(publish_flat_out(url, home, seconds, "sus", signed=signed))
        window_end = datetime.now().astimezone()
        time.sleep(3)
        heads = signed_heads(settings)
        signed_in_window = size_signed_by(heads, window_end) - size_signed_by(heads, window_start)
        duration = (window_end - window_start).total_seconds()
        # Let the backlog drain before anything else is measured.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (heads := signed_heads(settings)) and max(h[0] for h in heads) < sent:
            time.sleep(0.5)
        return sent, duration, signed_in_window / duration
    finally:
        stop(audit)


def latency(url: str, home: Path, rate: int, seconds: float) -> list[float]:
    """Paced publishing into the (restarted) signed audit service of `home`; ms per event."""
    settings = Settings(home=home)
    audit = start_process(["-m", "services.audit"], home, url, "audit")
    try:
        wait_ready(home, "audit", audit)
        store = open_store(settings, create=False)
        with store.read() as conn:
            first_latency_seq = store.count_entries(conn)
        store.db.dispose()
        paced = asyncio.run(publish_paced(url, home, rate, seconds, "lat"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and max(h[0] for h in signed_heads(settings)) < first_latency_seq + paced:
            time.sleep(0.2)
        heads = sorted(signed_heads(settings))
        latencies = []
        store = open_store(settings, create=False)
        with store.read() as conn:
            for rows in store.iter_rows(conn, below=first_latency_seq + paced):
                for row in rows:
                    if row.sequence < first_latency_seq:
                        continue
                    covering = next(at for size, at in heads if size > row.sequence)
                    occurred = datetime.fromisoformat(str(row.occurred_at).replace("Z", "+00:00"))
                    latencies.append((covering - occurred).total_seconds() * 1000)
        store.db.dispose()
        return sorted(latencies)
    finally:
        stop(audit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--unsigned-seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--noop-service", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--unauthenticated-audit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop_service:
        run_noop_service()
        return
    if args.unauthenticated_audit:
        run_unauthenticated_audit()
        return

    work = Path(tempfile.mkdtemp(prefix="tunegate-bench-"))
    server = EmbeddedRedis(work / "redis")
    url = server.start()
    print(f"redis {url} (AOF everysec), work dir {work}")
    try:
        base_rate = baseline(url, work / "noop-home", args.baseline_seconds) if args.baseline_seconds else 0.0
        print(f"baseline (bus + no-op handler): {base_rate:,.0f} events/s acked")
        home = work / "audit-home"
        sent, duration, rate = sustained(url, home, args.seconds, signed=True)
        ratio = f"; ratio to baseline {rate / base_rate:.2f}" if base_rate else ""
        print(
            f"sustained (signed, authenticated): published {sent:,} in {duration:.1f}s ({sent / duration:,.0f}/s); "
            f"signed ledger entries -> {rate:,.0f} events/s (target >= 5,000){ratio}"
        )
        if args.unsigned_seconds:
            _, _, unsigned = sustained(url, work / "unsigned-home", args.unsigned_seconds, signed=False)
            print(
                f"unsigned (no envelope signing or authentication): {unsigned:,.0f} events/s; "
                f"signed / unsigned = {rate / unsigned:.2f}"
            )
        latencies = latency(url, home, args.rate, args.latency_seconds)
        p50 = statistics.median(latencies)
        p99 = latencies[int(0.99 * (len(latencies) - 1))]
        print(
            f"latency at {args.rate}/s over {args.latency_seconds:.0f}s ({len(latencies):,} events): "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms (target p99 <= 250 ms)"
        )
    finally:
        server.stop()
    print("verification speed on a 1,000,000-entry ledger: run bench/audit_verify.py --entries 1000000")


if __name__ == "__main__":
    main()
