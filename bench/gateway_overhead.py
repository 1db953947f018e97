"""Gateway overhead: latency a proxy adds in front of an OpenAI-compatible upstream, LiteLLM's proxy against
a direct call (and tunegate's gateway, when given), side by side in one run against the same upstream.

    .venv/bin/python bench/gateway_overhead.py [--requests 300] [--rounds 3] [--concurrency 1 16]
        [--delay-ms 0] [--no-litellm] [--no-tunegate] [--floor] [--json FILE]

Set-up: bench/support/openai_upstream.py serves answers (its `numbered` model: each quotes the prompt's number) on
loopback in its own process; LiteLLM's
proxy (bench/support/litellm_proxy.py: its own virtualenv, installed from PyPI on first use) routes a model
name to it. The client sends non-streaming chat completions (one short user message, max_tokens 16) from
`concurrency` httpx async clients in one event loop, each with its own keep-alive connection (opened by a
first request that is not counted), after a warm-up run on every path.

Added latency is computed from the distributions: for each proxy and concurrency, its p50 (p99) minus the
direct path's p50 (p99) at the same concurrency. Request pairs are not matched one to one (at concurrency
16 there are no meaningful pairs); instead every target runs once per round, rounds alternate the order, and
each target's latencies are pooled over the rounds, so load from other processes on a shared machine falls
on all targets alike. Percentiles are nearest-rank on the pooled latencies.

Two more columns per proxy: `own p50/p99`, the proxy's own account of its overhead per request (the
response header `x-tunegate-overhead-ms` or `x-litellm-overhead-duration-ms`: total time minus the time spent
waiting for the upstream; LiteLLM's published overhead figures are this header's percentiles), and `cpu ms`,
the CPU time of the proxy's processes per request (user + system, read from /proc before the measurement and
after the proxy has gone quiet, so work left behind by one target, such as publishing audit events or
exporting spans, is billed to it and not to the next).

Caveats the figures carry: the client, the upstream and the proxy share the same cores (2 here, shared with
other work), so at concurrency 16 the proxy competes with the client for CPU; the added latency at 16 is
mostly queueing behind the proxy's CPU time per request: with 16 requests in flight and the proxy's one event
loop the busiest stage, each waits for the others' CPU time, so added p50 at 16 grows with `cpu ms` (about
8-16x it, by how busy the other core is). `--floor` adds `bare-proxy` (bench/support/bare_proxy.py): the
same server and client stack with nothing in between, what any Python gateway here pays before it does
anything; the gap between it and tunegate is the cost of tunegate's controls.

Targets from the issue for tunegate's gateway on 2 cores: added p50 <= 3 ms, p99 <= 15 ms, and below LiteLLM's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.litellm_proxy import LiteLLMProxy
from bench.support.openai_upstream import NUMBERED, serve_upstream

PROMPT = "Where is my order {n}? It was due on Friday."
"""Every request a different text (its number, never repeated within a run), as real traffic is: a repeated
prompt would be answered from the DLP's repeat cache and hide what DLP costs. The upstream's model is
`numbered`, whose answer quotes the prompt's number, so every answer differs too and the response DLP is paid
in full."""
MODEL = NUMBERED
MAX_TOKENS = 16
TUNEGATE_TARGETS = {"added p50 ms": 3.0, "added p99 ms": 15.0}
OVERHEAD_HEADERS = ("x-tunegate-overhead-ms", "x-litellm-overhead-duration-ms")
"""What each proxy reports as its own time per request (total minus the upstream call); LiteLLM's published
overhead figures are this header's percentiles."""


class BenchError(RuntimeError):
    """A target answered with errors: its latencies would not be comparable."""


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str  # ends in /v1
    model: str
    api_key: str
    pid: int | None = None
    """The proxy's process: its CPU time (with its children's) is measured per request."""


def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for process in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.Error):  # a child gone meanwhile
            times = process.cpu_times()
            total += times.user + times.system
    return total


def settled_cpu_s(pid: int, *, quiet_s: float = 0.2, limit_s: float = 3.0) -> float:
    """The process tree's CPU seconds once it has been idle for `quiet_s` (or after `limit_s`): the work a
    measurement left behind (publishing, exporting spans) is billed to it, not to the next target."""
    deadline = time.monotonic() + limit_s
    last = process_tree_cpu_s(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = process_tree_cpu_s(pid)
        if now - last < 0.01 * quiet_s:
            return now
        last = now
    return last


async def _measure(
    base_url: str, model: str, api_key: str, concurrency: int, requests: int
) -> tuple[list[float], float, list[float]]:
    # Numbered from a random 12-digit point: the numbers of one call do not repeat those of another (warm-up,
    # other rounds, other targets), so no prompt is answered from the DLP's repeat cache. Twelve digits, because
    # no recognizer of the default policy reads "order <12 digits>" as personal data (nine digits would be a
    # valid Dutch BSN one time in eleven, and that prompt would be redacted).
    sent = [10**11 + secrets.randbelow(8 * 10**11)]
    headers = {"authorization": f"Bearer {api_key}"}
    latencies: list[float] = []
    overheads: list[float] = []
    failures: list[str] = []
    remaining = [requests]
    warmed: list[bool] = []

    async def post(client: httpx.AsyncClient) -> float | None:
        sent[0] += 1
        body = {"model": model, "messages": [{"role": "user", "content": PROMPT.format(n=sent[0])}],
                "max_tokens": MAX_TOKENS, "temperature": 0}
        started = time.perf_counter()
        response = await client.post("/chat/completions", json=body)
        await response.aread()
        elapsed = (time.perf_counter() - started) * 1000.0
        if response.status_code != 200:
            failures.append(f"{response.status_code}: {response.text[:300]}")
            return None
        reported = response.headers.get(OVERHEAD_HEADERS[0]) or response.headers.get(OVERHEAD_HEADERS[1])
        if reported is not None and warmed:
            overheads.append(float(reported))
        return elapsed

    async def client_loop() -> None:
        # One client with one keep-alive connection per concurrent caller, as 16 separate clients would be:
        # a shared pool of 16 adds its own queueing (p99 of the direct path 10x its p50 in a trial run).
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60.0) as client:
            await post(client)  # opens the connection; not counted
            warmed.append(True)
            await ready.wait()  # all connections open: the measured part starts together
            while remaining[0] > 0:
                remaining[0] -= 1
                elapsed = await post(client)
                if elapsed is not None:
                    latencies.append(elapsed)

    ready = asyncio.Event()
    loops = [asyncio.create_task(client_loop()) for _ in range(concurrency)]
    while len(warmed) < concurrency and not any(loop.done() for loop in loops):  # a dead loop: gather raises
        await asyncio.sleep(0.001)
    started = time.perf_counter()
    ready.set()
    await asyncio.gather(*loops)
    seconds = time.perf_counter() - started
    if failures:
        raise BenchError(f"{base_url}: {len(failures)} requests failed, first: {failures[0]}")
    return latencies, seconds, overheads


def measure(base_url: str, model: str, api_key: str, concurrency: int, requests: int) -> list[float]:
    """Latency (ms, client-side, request sent to body read) of `requests` non-streaming chat completions,
    `concurrency` at a time; BenchError if any request fails."""
    return asyncio.run(_measure(base_url, model, api_key, concurrency, requests))[0]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Row:
    target: str
    concurrency: int
    requests: int
    p50_ms: float
    p99_ms: float
    throughput_rps: float
    added_p50_ms: float | None = None
    added_p99_ms: float | None = None
    reported_p50_ms: float | None = None
    reported_p99_ms: float | None = None
    """The proxy's own overhead header (OVERHEAD_HEADERS), as it measured itself."""
    cpu_ms_per_request: float | None = None
    """The proxy's CPU time (all its processes, user + system) per request, background work included."""
    notes: list[str] = field(default_factory=list)


def run(targets: list[Target], *, concurrencies: list[int], requests: int, rounds: int, warmup: int) -> list[Row]:
    pooled: dict[tuple[str, int], list[float]] = {}
    reported: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], float] = {}
    seconds: dict[tuple[str, int], float] = {}
    for target in targets:  # warm-up: connections, imports, caches on every path
        measure(target.base_url, target.model, target.api_key, max(concurrencies), warmup)
    for round_index in range(rounds):
        order = targets if round_index % 2 == 0 else list(reversed(targets))
        for concurrency in concurrencies:
            for target in order:
                cpu_before = settled_cpu_s(target.pid) if target.pid else 0.0
                latencies, elapsed, overheads = asyncio.run(
                    _measure(target.base_url, target.model, target.api_key, concurrency, requests)
                )
                if target.pid:
                    cpu[(target.name, concurrency)] = (cpu.get((target.name, concurrency), 0.0)
                                                       + settled_cpu_s(target.pid) - cpu_before)
                seconds[(target.name, concurrency)] = seconds.get((target.name, concurrency), 0.0) + elapsed
                pooled.setdefault((target.name, concurrency), []).extend(latencies)
                reported.setdefault((target.name, concurrency), []).extend(overheads)
    rows: list[Row] = []
    for concurrency in concurrencies:
        direct = pooled[("direct", concurrency)]
        for target in targets:
            values = pooled[(target.name, concurrency)]
            row = Row(
                target=target.name, concurrency=concurrency, requests=len(values),
                p50_ms=percentile(values, 50), p99_ms=percentile(values, 99),
                throughput_rps=len(values) / seconds[(target.name, concurrency)],
            )
            if (target.name, concurrency) in cpu:  # requests + 1 connection-opening request per client
                row.cpu_ms_per_request = cpu[(target.name, concurrency)] * 1000 / (len(values) + concurrency * rounds)
            if own := reported[(target.name, concurrency)]:
                row.reported_p50_ms, row.reported_p99_ms = percentile(own, 50), percentile(own, 99)
            if target.name != "direct":
                row.added_p50_ms = row.p50_ms - percentile(direct, 50)
                row.added_p99_ms = row.p99_ms - percentile(direct, 99)
            if target.name == "tunegate":
                for what, limit in TUNEGATE_TARGETS.items():
                    value = row.added_p50_ms if "p50" in what else row.added_p99_ms
                    if value is not None and value > limit:
                        row.notes.append(f"{what} {value:.2f} > target {limit}")
            rows.append(row)
    return rows


def format_table(rows: list[Row]) -> str:
    lines = [f"{'target':<10} {'conc':>4} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} "
             f"{'added p50':>10} {'added p99':>10} {'own p50':>8} {'own p99':>8} {'cpu ms':>7}  notes"]
    for row in rows:
        added50 = f"{row.added_p50_ms:10.2f}" if row.added_p50_ms is not None else f"{'-':>10}"
        added99 = f"{row.added_p99_ms:10.2f}" if row.added_p99_ms is not None else f"{'-':>10}"
        own50 = f"{row.reported_p50_ms:8.2f}" if row.reported_p50_ms is not None else f"{'-':>8}"
        own99 = f"{row.reported_p99_ms:8.2f}" if row.reported_p99_ms is not None else f"{'-':>8}"
        cpu = f"{row.cpu_ms_per_request:7.3f}" if row.cpu_ms_per_request is not None else f"{'-':>7}"
        lines.append(f"{row.target:<10} {row.concurrency:>4} {row.requests:>6} {row.p50_ms:8.2f} {row.p99_ms:8.2f} "
                     f"{row.throughput_rps:8.1f} {added50} {added99} {own50} {own99} {cpu}  {'; '.join(row.notes)}")
    return "\n".join(lines)


@contextmanager
def litellm_target(upstream_url: str, workers: int = 1) -> Iterator[Target]:
    with LiteLLMProxy.start(upstream_url=upstream_url, model=MODEL, workers=workers) as proxy:
        print(f"litellm {proxy.version} on {proxy.base_url} ({workers} worker(s))", file=sys.stderr)
        yield Target("litellm", proxy.base_url, MODEL, proxy.api_key, proxy.pid)


@contextmanager
def tunegate_target(upstream_url: str) -> Iterator[Target]:
    """tunegate's gateway with DLP, policy, budgets and audit on (the bundled default policy), routing a model
    name to the upstream (bench/support/tunegate_gateway.py)."""
    from bench.support.tunegate_gateway import running_gateway

    with running_gateway(upstream_url, MODEL) as gateway:
        print(f"tunegate gateway on {gateway.base_url}", file=sys.stderr)
        yield Target("tunegate", gateway.base_url, gateway.model, gateway.api_key, gateway.pid)


@contextmanager
def floor_target(upstream_url: str) -> Iterator[Target]:
    from bench.support.bare_proxy import bare_proxy

    with bare_proxy(upstream_url) as (base_url, pid):
        print(f"bare forwarder on {base_url}", file=sys.stderr)
        yield Target("bare-proxy", base_url, MODEL, "sk-bare", pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per target, concurrency and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--delay-ms", type=float, default=0.0, help="the upstream's model time per request")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM (no PyPI install)")
    parser.add_argument("--litellm-workers", type=int, default=1, help="LiteLLM proxy worker processes")
    parser.add_argument("--no-tunegate", action="store_true", help="skip tunegate's gateway")
    parser.add_argument("--floor", action="store_true",
                        help="also measure a bare forwarder (bench/support/bare_proxy.py): what serving and "
                             "forwarding alone add in Python on these cores")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    args = parser.parse_args()

    with ExitStack() as stack:
        upstream = stack.enter_context(serve_upstream(delay_ms=args.delay_ms))
        print(f"upstream on {upstream} (delay {args.delay_ms} ms)", file=sys.stderr)
        targets = [Target("direct", upstream, MODEL, "sk-direct")]
        if not args.no_litellm:
            targets.append(stack.enter_context(litellm_target(upstream, args.litellm_workers)))
        if not args.no_tunegate:
            targets.append(stack.enter_context(tunegate_target(upstream)))
        if args.floor:
            targets.append(stack.enter_context(floor_target(upstream)))
        rows = run(targets, concurrencies=args.concurrency, requests=args.requests, rounds=args.rounds,
                   warmup=args.warmup)
    print(f"# {platform.node()} {len(os.sched_getaffinity(0))} CPUs (shared), python {platform.python_version()}, "
          f"{args.rounds} rounds x {args.requests} requests per target and concurrency, upstream delay "
          f"{args.delay_ms} ms; added = target percentile - direct percentile")
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))


if __name__ == "__main__":
    main()
