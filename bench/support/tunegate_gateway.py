"""tunegate's gateway for the benches: a real gateway process in a temporary home with its own Redis, one
upstream route to the bench's upstream, and one API key with budgets far above what a bench sends, issued
as the registry would (a signed apikey.created). Built on the test harness (tests/gateway/gateway_support.py)
so the bench runs exactly what the suite tests."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shared.stack.redis_server import EmbeddedRedis
from tests.gateway.gateway_support import TENANT, GatewayHarness
from tests.support import wait_for

ROUTE = "bench-upstream"


@dataclass(frozen=True)
class RunningGateway:
    base_url: str  # ends in /v1
    model: str
    api_key: str
    harness: GatewayHarness

    @property
    def pid(self) -> int:
        assert self.harness.process is not None
        return self.harness.process.process.pid


@contextmanager
def running_gateway(upstream_url: str, upstream_model: str, *, extra_env: dict[str, str] | None = None
                    ) -> Iterator[RunningGateway]:
    work = Path(tempfile.mkdtemp(prefix="tunegate-bench-gateway-"))
    (work / "home").mkdir()
    server = EmbeddedRedis(work / "redis")
    server.start()
    routes = work / "upstreams.yaml"
    routes.write_text(json.dumps({"upstreams": [
        {"name": ROUTE, "base_url": upstream_url, "model": upstream_model, "tenants": [TENANT]}]}))
    harness = GatewayHarness(work / "home", server.url)
    try:
        harness.start(extra_env={"TUNEGATE_GATEWAY_UPSTREAMS_FILE": str(routes), "TUNEGATE_LOG_LEVEL": "WARNING",
                                 **(extra_env or {})})
        harness.create_key("bench", [ROUTE], rpm=1_000_000, tokens_per_day=10_000_000_000)
        probe = {"model": ROUTE, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        wait_for(lambda: harness.post("bench", "/v1/chat/completions", probe).status_code == 200, 60,
                 "the gateway to serve the bench route")
        yield RunningGateway(f"{harness.url}/v1", ROUTE, harness.keys["bench"], harness)
    finally:
        harness.stop()
        server.stop()
