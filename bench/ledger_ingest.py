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

With --postgres URL the ledger lives in fresh schemas of that PostgreSQL and other phases run instead:

    .venv/bin/python bench/ledger_ingest.py --postgres postgresql://postgres@127.0.0.1:5432/test

1. 1 audit process, flat out for --seconds (the same-run baseline), then 2 audit processes in one consumer
   group: signed entries/s and their ratio. Both replicas append; pg_advisory_xact_lock serialises each
   batch's transaction, so there is no idle standby sequencer and the chain cannot fork;
2. latency with 2 processes, paced at --rate for --latency-seconds (as phase 4 above);
3. takeover: 2 processes, paced at --rate for --takeover-seconds; after 5 s the process holding read but
   unacknowledged entries is SIGKILLed (PostgreSQL rolls its transaction back and frees the lock). Takeover
   time = SIGKILL -> every event it held is in the ledger (the survivor reclaims them after
   TUNEGATE_RECLAIM_IDLE_MS), with the longest stall of ledger growth meanwhile; then every published event
   is counted once and `tunegate audit verify` checks the chain.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from services.audit.application import ledger_event_ids, open_store  # noqa: E402
from services.audit.bootstrap import RECLAIM_IDLE_MS  # noqa: E402
from shared.bus.definition import ServiceDefinition  # noqa: E402
from shared.bus.lifecycle import ServiceRuntime, run_service  # noqa: E402
from shared.bus.liveness import consumer_name, ready_file_name  # noqa: E402
from shared.bus.publisher import Publisher  # noqa: E402
from shared.bus.wire import body_of  # noqa: E402
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


def start_process(
    args: list[str], home: Path, url: str, log_name: str, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, TUNEGATE_HOME=str(home), TUNEGATE_REDIS_URL=url, PYTHONPATH=str(REPO), **(extra_env or {}))
    env.setdefault("TUNEGATE_READ_BATCH", "1000")
    env.setdefault("TUNEGATE_LOG_LEVEL", "WARNING")
    home.mkdir(parents=True, exist_ok=True)
    log = (home / f"{log_name}.log").open("ab")
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


def sustained(
    url: str, home: Path, seconds: float, signed: bool, replicas: int = 1, database_url: str | None = None,
    drain: bool = True,
) -> tuple[int, float, float]:
    """Flat-out publishing into fresh audit process(es); (sent, duration, signed ledger entries/s)."""
    redis.Redis.from_url(url).delete("tunegate.jobs", "tunegate.bus")  # the audit group starts at id 0
    settings = Settings(home=home, database_url=database_url)
    args = ["-m", "services.audit"] if signed else [__file__, "--unauthenticated-audit"]
    env = {"TUNEGATE_DATABASE_URL": database_url} if database_url else None
    audits = [start_process(args, home, url, "audit", env) for _ in range(replicas)]
    try:
        for audit in audits:
            wait_ready(home, "audit", audit)
        window_start = datetime.now().astimezone()
        sent = asyncio.run(publish_flat_out(url, home, seconds, "sus", signed=signed))
        window_end = datetime.now().astimezone()
        time.sleep(3)
        heads = signed_heads(settings)
        signed_in_window = size_signed_by(heads, window_end) - size_signed_by(heads, window_start)
        duration = (window_end - window_start).total_seconds()
        # Let the backlog drain before anything else is measured (on this home; a fresh schema needs none).
        deadline = time.monotonic() + (120 if drain else 0)
        while time.monotonic() < deadline and (heads := signed_heads(settings)) and max(h[0] for h in heads) < sent:
            time.sleep(0.5)
        return sent, duration, signed_in_window / duration
    finally:
        for audit in audits:
            stop(audit)


def latency(
    url: str, home: Path, rate: int, seconds: float, replicas: int = 1, database_url: str | None = None
) -> list[float]:
    """Paced publishing into the (restarted) signed audit service(s) of `home`; ms per event. The streams are
    emptied first: an earlier phase that did not drain leaves entries (pending ones of its killed processes
    among them) that the new processes would ingest, and reclaim, before the paced events, measuring the
    backlog instead of the latency (p50 3.3 s and p99 17 s in two runs, 63 ms and 119 ms without it)."""
    redis.Redis.from_url(url).delete("tunegate.jobs", "tunegate.bus")
    settings = Settings(home=home, database_url=database_url)
    env = {"TUNEGATE_DATABASE_URL": database_url} if database_url else None
    audits = [start_process(["-m", "services.audit"], home, url, "audit", env) for _ in range(replicas)]
    try:
        for audit in audits:
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
        for audit in audits:
            stop(audit)


# ---------------------------------------------------------------------------------------------- PostgreSQL


def fresh_schema(base: str) -> str:
    """A new, empty schema in the PostgreSQL at `base`; the URL that makes it the search path."""
    import psycopg

    schema = f"bench_ledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


def drop_schema(base: str, url: str) -> None:
    import psycopg

    schema = url.rsplit("%3D", 1)[1]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def held_by(client: redis.Redis, consumer: str) -> list[str]:
    """Event ids of the entries `consumer` read from tunegate.jobs and has not acknowledged."""
    held = []
    for row in client.xpending_range("tunegate.jobs", "tunegate-audit", "-", "+", 100_000, consumername=consumer):
        for _id, fields in client.xrange("tunegate.jobs", row["message_id"], row["message_id"]):
            held.append(Envelope.from_wire(body_of(fields)).event_id)
    return held


@dataclass
class Takeover:
    sent: int
    victim_held: int
    takeover_s: float
    longest_stall_s: float
    entries: int
    distinct: int
    verified: bool
    verify_output: str


def takeover(url: str, home: Path, database_url: str, rate: int, seconds: float, kill_after: float) -> Takeover:
    """Two audit processes ingest paced events; after `kill_after` s the one holding unacknowledged entries is
    SIGKILLed. Takeover = SIGKILL -> every event it held is a ledger entry (the survivor reclaims them once
    they have been idle TUNEGATE_RECLAIM_IDLE_MS, 3 s by default for the audit). Stall = the longest time the
    ledger did not grow while events were still being published (new events keep flowing to the survivor).
    Then the chain is checked with `tunegate audit verify`."""
    redis.Redis.from_url(url).delete("tunegate.jobs", "tunegate.bus")
    settings = Settings(home=home, database_url=database_url)
    env = {"TUNEGATE_DATABASE_URL": database_url}
    audits = [start_process(["-m", "services.audit"], home, url, "audit", env) for _ in range(2)]
    client = redis.Redis.from_url(url)
    store = open_store(settings, create=True)  # both processes create it too; the schema lock orders the three
    sent: list[int] = []
    paced = lambda: sent.append(asyncio.run(publish_paced(url, home, rate, seconds, "tko")))  # noqa: E731
    publisher = threading.Thread(target=paced)
    try:
        for audit in audits:
            wait_ready(home, "audit", audit)
        publisher.start()
        time.sleep(kill_after)
        host = socket.gethostname()
        victim, held = None, []
        deadline = time.monotonic() + 10
        # A replica is frozen (SIGSTOP) when seen holding entries, and what it holds is read while it is frozen;
        # on a quiet machine it has often acked them in between, so it is thawed and the search goes on. Then it
        # is killed mid-batch.
        while not held and time.monotonic() < deadline:
            for audit in audits:
                consumer = consumer_name("audit", host, audit.pid)
                if client.xpending_range("tunegate.jobs", "tunegate-audit", "-", "+", 1, consumername=consumer):
                    os.kill(audit.pid, signal.SIGSTOP)
                    held = held_by(client, consumer)
                    if held:
                        victim = audit
                        break
                    os.kill(audit.pid, signal.SIGCONT)
            time.sleep(0.005)
        if victim is None:
            raise SystemExit("no audit process held entries to kill: raise --rate")
        victim.kill()
        killed_at = time.monotonic()
        victim.wait()
        wanted = set(held)
        taken_over_at = None
        last_count, last_growth, stall = -1, killed_at, 0.0
        while time.monotonic() - killed_at < 180 and (taken_over_at is None or publisher.is_alive()):
            with store.read() as conn:
                count = store.count_entries(conn)
                if taken_over_at is None and not wanted - store.existing_event_ids(conn, list(wanted)):
                    taken_over_at = time.monotonic()
            now = time.monotonic()
            if count > last_count or not publisher.is_alive():  # a stall counts only while events still arrive
                if count > last_count and last_count >= 0:
                    stall = max(stall, now - last_growth)
                last_count, last_growth = count, now
            time.sleep(0.05)
        if taken_over_at is None:
            raise SystemExit(f"the survivor did not take over the {len(held)} held events in 180 s")
        publisher.join()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with store.read() as conn:
                if store.count_entries(conn) >= sent[0]:
                    break
            time.sleep(0.2)
        time.sleep(1.0)  # a signed head over the last entries
        ids = ledger_event_ids(settings)
        verify = subprocess.run(
            [sys.executable, "-m", "services.cli.main", "audit", "verify", "--json"],
            env=dict(os.environ, TUNEGATE_HOME=str(home), TUNEGATE_DATABASE_URL=database_url, PYTHONPATH=str(REPO)),
            capture_output=True, text=True, cwd=REPO, check=False,
        )  # fmt: skip
        return Takeover(
            sent=sent[0], victim_held=len(held), takeover_s=taken_over_at - killed_at, longest_stall_s=stall,
            entries=len(ids), distinct=len(set(ids)), verified=verify.returncode == 0,
            verify_output=verify.stdout.strip() or verify.stderr.strip()[-2000:],
        )  # fmt: skip
    finally:
        store.db.dispose()
        client.close()
        for audit in audits:
            stop(audit)


def postgres_replicas(url: str, work: Path, base: str, args: argparse.Namespace) -> None:
    """The ledger on PostgreSQL with 1 process (baseline) and 2 replicas of the audit service in one consumer
    group. Both replicas append: pg_advisory_xact_lock serialises each batch's transaction (the holder
    re-reads the head under it), so there is no idle standby, and "takeover" is the survivor reclaiming
    what the dead one had read and not committed."""
    schemas: list[str] = []

    def schema() -> str:
        schemas.append(fresh_schema(base))
        return schemas[-1]

    try:
        _, _, one = sustained(url, work / "pg-1", args.seconds, signed=True, replicas=1, database_url=schema(),
                            drain=False)
        print(f"PostgreSQL, 1 audit process: {one:,.0f} signed ledger entries/s")
        _, _, two = sustained(url, work / "pg-2", args.seconds, signed=True, replicas=2, database_url=schema(),
                            drain=False)
        print(f"PostgreSQL, 2 audit processes: {two:,.0f} signed ledger entries/s; ratio to 1 process {two / one:.2f}")
        home = work / "pg-lat"
        lat = latency(url, home, args.rate, args.latency_seconds, replicas=2, database_url=schema())
        p50, p99 = statistics.median(lat), lat[int(0.99 * (len(lat) - 1))]
        print(
            f"PostgreSQL, 2 processes, publish -> signed ledger entry at {args.rate}/s over "
            f"{args.latency_seconds:.0f}s ({len(lat):,} events): p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
            f"max {lat[-1]:.1f} ms"
        )
        explicit = Settings()
        # The audit's own default (services/audit/bootstrap.py) unless the environment sets one.
        idle = explicit.reclaim_idle_ms if "reclaim_idle_ms" in explicit.model_fields_set else RECLAIM_IDLE_MS
        result = takeover(url, work / "pg-takeover", schema(), args.rate, args.takeover_seconds, kill_after=5.0)
        print(
            f"takeover (SIGKILL of the replica holding entries, TUNEGATE_RECLAIM_IDLE_MS={idle}): it held "
            f"{result.victim_held} events; all in the ledger {result.takeover_s:.1f} s after the kill; longest "
            f"ledger stall meanwhile {result.longest_stall_s:.2f} s"
        )
        forked = result.entries != result.distinct or result.distinct != result.sent
        print(
            f"after the kill: published {result.sent:,}, ledger entries {result.entries:,}, distinct events "
            f"{result.distinct:,} ({'MISMATCH' if forked else 'each once'}); audit verify: "
            f"{'ok' if result.verified else 'FAILED'}"
        )
        if forked or not result.verified:
            print(result.verify_output)
            raise SystemExit(1)
    finally:
        for url_ in schemas:
            drop_schema(base, url_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--unsigned-seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--postgres", metavar="URL", help="run the PostgreSQL phases (1 vs 2 audit processes, "
                        "latency, takeover after SIGKILL) against this database instead of the SQLite ones")
    parser.add_argument("--takeover-seconds", type=float, default=50.0,
                        help="paced publishing during the takeover phase (must outlast TUNEGATE_RECLAIM_IDLE_MS)")
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
    if args.postgres:
        try:
            postgres_replicas(url, work, args.postgres, args)
        finally:
            server.stop()
        return
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
