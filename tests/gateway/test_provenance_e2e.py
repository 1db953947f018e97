"""Provenance end to end: a real gateway process answers through an upstream route (the bench's OpenAI-compatible
upstream on loopback), and `tunegate verify-response` checks the body it returned against the gateway's
public key in the same key store; an altered body fails with the reason. No local model is needed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.support.openai_upstream import answer_words, serve_upstream
from services.cli.main import app
from services.gateway.domain.provenance import parse_header, response_provenance, response_sha256
from shared.stack.redis_server import EmbeddedRedis
from tests.gateway.gateway_support import TENANT, GatewayHarness
from tests.support import service_database_env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUTE = "frontier-mini"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayHarness]:
    work = tmp_path_factory.mktemp("gateway-provenance")
    home = work / "home"
    home.mkdir()
    server = EmbeddedRedis(work / "redis")
    server.start()
    with serve_upstream(in_thread=True) as upstream:
        routes = work / "upstreams.yaml"
        routes.write_text(json.dumps({"upstreams": [
            {"name": ROUTE, "base_url": upstream, "model": "bench-model", "tenants": [TENANT], "timeout_s": 10}
        ]}))
        with service_database_env("provenance") as database:
            harness = GatewayHarness(home, server.url, env=database)
            try:
                harness.start(extra_env={"TUNEGATE_GATEWAY_UPSTREAMS_FILE": str(routes)})
                harness.create_key("app", [ROUTE])
                wait_for(lambda: _answers(harness), 60, "the key and the upstream route")
                yield harness
            finally:
                harness.stop()
                server.stop()


def _answers(harness: GatewayHarness) -> bool:
    reply = harness.post("app", "/v1/chat/completions",
                         {"model": ROUTE, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 2})
    return reply.status_code == 200


def verify(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verify-response", *args], env={"TUNEGATE_HOME": str(home)})
    return result.exit_code, result.output


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"model": ROUTE, "messages": [{"role": "user", "content": "Where is my order?"}],
                              "max_tokens": 6}),
    ("/v1/completions", {"model": ROUTE, "prompt": "Where is my order?", "max_tokens": 6}),
])
def test_a_gateway_response_verifies_and_an_altered_one_does_not(
    gateway: GatewayHarness, tmp_path: Path, path: str, body: dict[str, object]
) -> None:
    reply = gateway.post("app", path, body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    expected_text = " ".join(answer_words(6))
    statement = response_provenance(data)
    # Header and body carry the same statement, about the text the client got, under the audit event id.
    assert parse_header(reply.headers["x-tunegate-provenance"]) == statement
    assert statement.sha256 == response_sha256(expected_text)
    assert statement.event == reply.headers["x-tunegate-audit-event"] == data["tunegate"]["audit_event_id"]
    assert statement.version == ROUTE

    response_file = tmp_path / "response.json"
    response_file.write_text(reply.text)
    code, output = verify(gateway.home, "--response", str(response_file))
    assert code == 0, output
    assert f"model version {ROUTE}" in output and statement.event in output

    text_file = tmp_path / "answer.txt"
    text_file.write_text(expected_text)
    code, output = verify(gateway.home, "--header", reply.headers["x-tunegate-provenance"], "--text", str(text_file))
    assert code == 0, output

    choice = data["choices"][0]
    if "message" in choice:
        choice["message"]["content"] = expected_text.replace("order", "refund")
    else:
        choice["text"] = "Something the model never said."
    response_file.write_text(json.dumps(data))
    code, output = verify(gateway.home, "--response", str(response_file))
    assert code == 1 and "text_mismatch" in output
