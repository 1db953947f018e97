"""Container probe for tunegate's worker services: is the service process in THIS container alive on the bus?

    python /usr/local/lib/tunegate/healthcheck.py [SERVICE] [--max-age SECONDS] [--host NAME]

Every service process refreshes a heartbeat key in Redis every 2 s (shared.bus.delivery_loops, TTL 10 s) named
after its consumer, `<service>-<host>-<pid>`, and recording its host name. The probe exits 0 when a heartbeat
of SERVICE (default: $SERVICE) written by a process of this host (the pod or container hostname) is younger
than --max-age, 1 with the reason on stderr when there is none or Redis cannot be reached, and 2 on bad
usage. It reads the heartbeat keys of the processes it sees in /proc with GET: a service's Redis user may
read its own heartbeats but may not SCAN the keyspace (shared/stack/redis_acl.py). Without /proc (not
Linux) it falls back to SCAN, which needs a user allowed to run it.

Why not `tunegate status --json`: it is a report for humans and always exits 0, and the services' ready
files sit on the shared TUNEGATE_HOME volume, where PIDs of different pods collide; neither can say
whether this particular pod works. Copied into the image by the Dockerfile; used by compose.yaml and
the worker Deployments in infra/k8s."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time
from pathlib import Path

import redis

from shared.bus.liveness import consumer_name, heartbeat_key
from shared.config import Settings

SERVICE_NAME = re.compile(r"[a-z][a-z0-9_-]*")


def glob_escape(text: str) -> str:
    """Redis MATCH patterns treat * ? [ ] and backslash specially; a host name must match literally."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


PROC = Path("/proc")


def local_pids() -> list[int] | None:
    """PIDs of the processes visible here (this container's or pod's), or None without /proc."""
    if not PROC.is_dir():
        return None
    return sorted(int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit())


def heartbeat_keys(client: redis.Redis, service: str, host: str) -> list[str]:
    pids = local_pids()
    if pids is None:
        return [key.decode() for key in client.scan_iter(match=heartbeat_key(glob_escape(service), "*"), count=500)]
    # The consumer name of a service process, as shared/bus/lifecycle.py builds it.
    return [heartbeat_key(service, consumer_name(service, host, pid)) for pid in pids]


def fresh_heartbeats(client: redis.Redis, service: str, host: str, max_age_s: float) -> list[dict[str, object]]:
    now = time.time()
    beats = []
    keys = heartbeat_keys(client, service, host)
    pipeline = client.pipeline(transaction=False)
    for key in keys:
        pipeline.get(key)
    for raw in pipeline.execute() if keys else []:
        if raw is None:  # no such process on the bus, or its heartbeat expired
            continue
        beat = json.loads(raw)
        if beat.get("service") == service and beat.get("host") == host and now - float(beat["at"]) <= max_age_s:
            beats.append(beat)
    return beats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", nargs="?", default=os.environ.get("SERVICE"), help="default: $SERVICE")
    parser.add_argument("--max-age", type=float, default=15.0, help="seconds a heartbeat stays valid")
    parser.add_argument("--host", default=socket.gethostname(), help="host the process runs on (default: this)")
    args = parser.parse_args(argv)
    if not args.service:
        print("healthcheck: no service given: pass its name or set SERVICE", file=sys.stderr)
        return 2
    if not SERVICE_NAME.fullmatch(args.service):
        print(f"healthcheck: invalid service name {args.service!r} (expected e.g. 'scanner')", file=sys.stderr)
        return 2
    if args.max_age <= 0:
        print(f"healthcheck: --max-age must be positive, got {args.max_age}", file=sys.stderr)
        return 2

    try:
        url = Settings().resolved_redis_url()
    except RuntimeError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        beats = fresh_heartbeats(client, args.service, args.host, args.max_age)
    except redis.RedisError as exc:
        print(f"healthcheck: redis unreachable for service {args.service}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if not beats:
        print(
            f"healthcheck: no heartbeat of service {args.service} from host {args.host} "
            f"in the last {args.max_age:g} s (process down, wedged, or not connected to Redis)",
            file=sys.stderr,
        )
        return 1
    consumers = ", ".join(sorted(str(beat["consumer"]) for beat in beats))
    print(f"healthy: {args.service} on {args.host} ({consumers})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
