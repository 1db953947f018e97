"""The floor under any Python gateway on this machine: a forwarder with nothing in it. A raw ASGI app on
uvicorn (uvloop, httptools), as the gateway's HTTP layer is, passing each POST's body to the upstream over one
aiohttp session, as the gateway's upstream client does, and the answer back: no key, policy, DLP, budget,
audit, provenance or tracing. The overhead bench runs it beside the gateway (`--floor`), so the gateway's
added latency reads against what serving and forwarding alone cost in the same run, on the same cores.

    with bare_proxy(upstream_url) as (base_url, pid): ...
    python bench/support/bare_proxy.py --upstream http://127.0.0.1:8001/v1 --port 8002
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.support.openai_upstream import free_port, wait_ready


def create_app(upstream_url: str) -> Any:
    import aiohttp

    sessions: list[aiohttp.ClientSession] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        if not sessions:
            sessions.append(aiohttp.ClientSession())
        headers = {"content-type": "application/json", "authorization": "Bearer sk-bare"}
        method, path = scope["method"], scope["path"].removeprefix("/v1")
        async with sessions[0].request(method, upstream_url + path, data=b"".join(chunks), headers=headers) as reply:
            body = await reply.read()
            status = reply.status
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


@contextmanager
def bare_proxy(upstream_url: str) -> Iterator[tuple[str, int]]:
    """The forwarder in its own process on a free loopback port: yields (base URL ending in /v1, pid)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--upstream", upstream_url,
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(url, lambda: process.poll() is None)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the upstream's base URL, ending in /v1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(args.upstream), host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
