"""Aggregate completion tokens/s of the gateway's local engine: 16 concurrent clients versus one, same run,
same engine, requests spread over two LoRA adapters and the base.

    .venv/bin/python bench/gateway_tokens.py [--requests 48] [--max-tokens 64] [--clients 16] [--rounds 3] [--json]

Each client sends its share of the requests one after another (the next when the previous one has
finished), as a chat client does. With one client every request is decoded alone; with 16, the engine's
continuous batching decodes them together, rows of different adapters in the same forward passes. Tokens
are the completion tokens the engine reports; the figure is tokens over the wall time of the whole phase.
Rounds alternate the order of the two phases after one uncounted warm-up, so drift on a shared machine hits
both; the ratio is the median of per-round ratios. Target (issue 13): ratio >= 4 on `tiny`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.random_adapter import make_random_adapter
from services.gateway.adapters.engine import GenerationRequest, LocalEngine
from shared.config import Settings
from shared.models.bases import resolve_base

ADAPTERS = ("bench-a.v1", "bench-b.v1", None)
QUESTIONS = ("Extract the order as JSON: Ada Berg from Oslo ordered 2 lamps.", "Where is my parcel?",
             "Tell me about the city of Lisbon", "Hi")


def requests_for(engine: LocalEngine, count: int, max_tokens: int) -> list[GenerationRequest]:
    return [GenerationRequest(adapter=ADAPTERS[i % len(ADAPTERS)], max_new_tokens=max_tokens,
                              prompt=engine.render_chat([{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]))
            for i in range(count)]


async def phase(engine: LocalEngine, requests: list[GenerationRequest], clients: int) -> dict[str, float]:
    """`clients` concurrent clients share `requests`, each sending its next one when the last is done."""
    shares = [requests[i::clients] for i in range(clients)]
    latencies: list[float] = []

    async def client(share: list[GenerationRequest]) -> int:
        tokens = 0
        for request in share:
            started = time.perf_counter()
            tokens += (await engine.complete(request)).completion_tokens
            latencies.append(time.perf_counter() - started)
        return tokens

    started = time.perf_counter()
    tokens = sum(await asyncio.gather(*(client(share) for share in shares)))
    elapsed = time.perf_counter() - started
    return {"clients": clients, "tokens": tokens, "seconds": round(elapsed, 3),
            "tokens_per_s": round(tokens / elapsed, 1), "median_request_s": round(statistics.median(latencies), 3)}


async def run(args: argparse.Namespace, engine: LocalEngine) -> dict[str, object]:
    requests = requests_for(engine, args.requests, args.max_tokens)
    await phase(engine, requests[: max(args.clients, 4)], args.clients)  # warm-up, uncounted
    rounds = []
    for index in range(args.rounds):
        order = (1, args.clients) if index % 2 == 0 else (args.clients, 1)
        results = {clients: await phase(engine, requests, clients) for clients in order}
        rounds.append({"single": results[1], "concurrent": results[args.clients],
                       "ratio": round(results[args.clients]["tokens_per_s"] / results[1]["tokens_per_s"], 2)})
    ratio = statistics.median(r["ratio"] for r in rounds)
    return {"base": "tiny", "adapters": [a or "base" for a in ADAPTERS], "requests": args.requests,
            "max_tokens": args.max_tokens, "clients": args.clients, "largest_batch": engine.largest_batch,
            "rounds": rounds, "ratio": ratio, "target": 4.0, "met": ratio >= 4.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=48, help="requests per phase (default 48)")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_new_tokens of each request (default 64)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients of the batched phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = parser.parse_args()
    if min(args.requests, args.max_tokens, args.clients, args.rounds) < 1:
        parser.error("--requests, --max-tokens, --clients and --rounds must be at least 1")

    home = Path(os.environ.get("TUNEGATE_TEST_MODELS_HOME") or Settings().home)
    base = resolve_base("tiny", Settings(home=home))
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as scratch:
        engine = LocalEngine(base.path, max_batch=args.clients, batch_wait_ms=2.0)
        for seed, name in enumerate(a for a in ADAPTERS if a):
            engine.load_adapter(name, make_random_adapter(base.path, Path(scratch) / name, seed + 1))
        try:
            report = asyncio.run(run(args, engine))
        finally:
            asyncio.run(engine.aclose())

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for number, r in enumerate(report["rounds"], 1):  # type: ignore[attr-defined]
            print(f"round {number}: 1 client {r['single']['tokens_per_s']} tok/s, {args.clients} clients "
                  f"{r['concurrent']['tokens_per_s']} tok/s, ratio {r['ratio']}x")
        print(f"median ratio {report['ratio']}x (target >= 4x: {'met' if report['met'] else 'NOT met'}); "
              f"largest batch {report['largest_batch']}")
    return 0 if report["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
