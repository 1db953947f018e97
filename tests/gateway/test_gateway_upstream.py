"""Upstream routes against real HTTP upstreams on loopback (bench/support/openai_upstream.py): answers and
streams pass through the gateway's policy, budgets and audit; an upstream's errors, rate limits, refusals of
the gateway's key, stalls and absence each become a specific OpenAI error and an inference.blocked record;
and a gateway SIGKILLed right after answering loses no audit record (its outbox is published on restart)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import redis
import yaml

from bench.support.openai_upstream import answer_words, free_port, serve_upstream
from shared.stack.redis_server import EmbeddedRedis
from tests.gateway.gateway_support import TENANT, GatewayHarness
from tests.support import REPO_ROOT, ServiceProcess, read_stream, service_database_env, wait_for

pytestmark = [pytest.mark.integration]

PROMPT = [{"role": "user", "content": "Summarise ticket 4411 for me."}]


def routes_file(path: Path, fast: str, slow: str) -> Path:
    def route(name: str, url: str, model: str, timeout_s: float = 10.0, **extra: str) -> dict[str, object]:
        return {"name": name, "base_url": url, "model": model, "tenants": [TENANT], "timeout_s": timeout_s, **extra}

    path.write_text(json.dumps({"upstreams": [
        route("frontier", fast, "bench-model", api_key_env="TUNEGATE_TEST_FRONTIER_KEY"),
        route("broken", fast, "fail-500"),
        route("busy", fast, "fail-429"),
        route("refusing", fast, "fail-401"),
        route("stalled", slow, "bench-model", timeout_s=0.5),
        route("patient", slow, "bench-model", timeout_s=30.0),
        route("absent", f"http://127.0.0.1:{free_port()}/v1", "bench-model", timeout_s=2.0),
        route("keyless", fast, "bench-model", api_key_env="TUNEGATE_TEST_UNSET_KEY"),
        route("echoing", fast, "echo-error"),
        route("miscounting", fast, "bogus-usage"),
        route("reciting", fast, "recite"),
        route("erring", fast, "stream-error"),
        route("cutting", fast, "stream-cut"),
        route("ignoring", fast, "verbose"),
    ]}))
    return path


def policies_file(path: Path) -> Path:
    """The bundled policies, and one for the `reciting` route that blocks e-mail addresses in answers."""
    bundled = yaml.safe_load((REPO_ROOT / "services" / "gateway" / "config" / "policies.yaml").read_text())
    bundled["policies"].append({"name": "no-addresses-out", "extends": "default",
                                "match": {"tenants": "*", "models": ["reciting"]},
                                "dlp": {"response": {"EMAIL_ADDRESS": "block"}}})
    path.write_text(yaml.safe_dump(bundled))
    return path


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[str, str]]:
    with serve_upstream(in_thread=True) as fast, serve_upstream(in_thread=True, delay_ms=3_000) as slow:
        yield fast, slow


def start_gateway(work: Path, redis_url: str, upstreams: tuple[str, str],
                  env: dict[str, str] | None = None) -> GatewayHarness:
    home = work / "home"
    home.mkdir(exist_ok=True)
    harness = GatewayHarness(home, redis_url, env=env or {})
    harness.start(extra_env={"TUNEGATE_GATEWAY_UPSTREAMS_FILE": str(routes_file(work / "routes.yaml", *upstreams)),
                             "TUNEGATE_GATEWAY_POLICIES_FILE": str(policies_file(work / "policies.yaml")),
                             "TUNEGATE_GATEWAY_BODY_TIMEOUT_S": "1.5",
                             "TUNEGATE_TEST_FRONTIER_KEY": "sk-upstream-secret"})
    return harness


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstreams: tuple[str, str]) -> Iterator[GatewayHarness]:
    work = tmp_path_factory.mktemp("gateway-upstream")
    server = EmbeddedRedis(work / "redis")
    server.start()
    with service_database_env("gateway_upstream") as database:
        harness = start_gateway(work, server.url, upstreams, database)
        try:
            harness.create_key("app", ["*"])
            wait_for(lambda: harness.post("app", "/v1/chat/completions", {
                "model": "frontier", "messages": PROMPT, "max_tokens": 2}).status_code == 200,
                60, "the key and the upstream route")
            yield harness
        finally:
            harness.stop()
            server.stop()


def test_an_upstream_answer_and_stream_pass_through_the_gateway(gateway: GatewayHarness) -> None:
    client = gateway.client("app")
    reply = client.chat.completions.create(model="frontier", messages=PROMPT, max_tokens=6)
    assert reply.choices[0].message.content == " ".join(answer_words(6))
    assert reply.model == "frontier" and reply.usage.completion_tokens > 0
    chunks = list(client.chat.completions.create(model="frontier", messages=PROMPT, max_tokens=6, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == " ".join(answer_words(6))
    text = client.completions.create(model="frontier", prompt="Ticket 4411:", max_tokens=4)
    assert text.choices[0].text


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("model", "status", "code"), [
    ("broken", 502, "upstream_error"),
    ("busy", 429, "upstream_rate_limited"),
    ("refusing", 502, "upstream_auth"),
    ("stalled", 504, "upstream_timeout"),
    ("absent", 502, "upstream_unreachable"),
    ("keyless", 502, "upstream_key_missing"),
])
def test_upstream_failures_are_specific_openai_errors_and_audited(gateway: GatewayHarness, model: str, status: int,
                                                                   code: str, stream: bool) -> None:
    """Streamed or not: a stream's status line waits for the model's first piece, so an upstream that fails
    before it is the same status (a 200 with an error event lost the status and retry-after)."""
    response = gateway.post("app", "/v1/chat/completions", {"model": model, "messages": PROMPT, "max_tokens": 4,
                                                              "stream": stream})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    if model == "busy":
        assert response.headers.get("retry-after") is None  # the bench upstream sends none: none is made up
    client = redis.Redis.from_url(gateway.redis_url)
    request_id = response.headers["x-tunegate-request-id"]
    wait_for(lambda: any(e.type == "inference.blocked" and e.payload["request_id"] == request_id
                         and e.payload["stage"] == "model" for e in read_stream(client, "tunegate.inference")),
             30, f"the refusal of {model}")


@pytest.mark.parametrize(("model", "reason"), [
    ("erring", "upstream erring failed mid-stream: the model server failed mid-answer"),
    ("cutting", "upstream cutting ended its stream before the answer finished"),
])
def test_an_upstream_failure_mid_stream_ends_the_stream_with_an_error(gateway: GatewayHarness, model: str,
                                                                      reason: str) -> None:
    """An error chunk, or a connection closed with no finish_reason and no [DONE], is not a whole answer: the
    stream ends with an error event, audited as a refusal (once, these were signed and audited as answers
    that stopped normally)."""
    chunks: list[str] = []
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", timeout=30,
                      json={"model": model, "messages": PROMPT, "max_tokens": 8, "stream": True},
                      headers={"authorization": f"Bearer {gateway.keys['app']}"}) as response:
        assert response.status_code == 200
        request_id = response.headers["x-tunegate-request-id"]
        chunks = [line for line in response.iter_lines() if line.startswith("data: ")]
    last = json.loads(chunks[-1][6:])
    assert last["error"]["code"] == "upstream_error" and reason in last["error"]["message"]
    assert not any('"finish_reason":"' in line for line in chunks)
    client = redis.Redis.from_url(gateway.redis_url)
    records = wait_for(lambda: [e for e in read_stream(client, "tunegate.inference")
                                if e.payload["request_id"] == request_id], 30, "the record")
    assert [(e.type, e.payload["check"]) for e in records] == [("inference.blocked", "upstream")]
    with pytest.raises(openai.APIError):
        list(gateway.client("app").chat.completions.create(model=model, messages=PROMPT, max_tokens=8, stream=True))


def test_a_stream_the_response_dlp_cuts_is_audited_as_blocked_with_what_it_found(gateway: GatewayHarness) -> None:
    """Policy `no-addresses-out` blocks e-mail addresses in answers. Whole, that is a 400; streamed, the text
    before the address is sent, the stream ends with finish_reason content_filter, and the record is an
    inference.blocked naming EMAIL_ADDRESS (once: an inference.completed, 'allowed', with no findings)."""
    whole = gateway.post("app", "/v1/chat/completions", {"model": "reciting", "messages": PROMPT, "max_tokens": 16})
    assert whole.status_code == 400 and whole.json()["error"]["code"] == "content_filter"
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", timeout=30,
                      json={"model": "reciting", "messages": PROMPT, "max_tokens": 16, "stream": True},
                      headers={"authorization": f"Bearer {gateway.keys['app']}"}) as response:
        assert response.status_code == 200
        request_id = response.headers["x-tunegate-request-id"]
        chunks = [json.loads(line[6:]) for line in response.iter_lines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert "jane" not in text and "example.com" not in text
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "content_filter"
    assert final["tunegate"]["provenance"] is None and "EMAIL_ADDRESS" in final["tunegate"]["withheld"]
    client = redis.Redis.from_url(gateway.redis_url)
    records = wait_for(lambda: [e for e in read_stream(client, "tunegate.inference")
                                if e.payload["request_id"] == request_id], 30, "the record")
    assert [e.type for e in records] == ["inference.blocked"]
    blocked = records[0].payload
    assert (blocked["stage"], blocked["check"], blocked["findings"]) == ("response", "dlp", {"EMAIL_ADDRESS": 1})
    assert records[0].event_id == final["tunegate"]["audit_event_id"]


def test_a_client_that_leaves_mid_stream_still_leaves_an_audited_answer(gateway: GatewayHarness) -> None:
    """The upstream streams its 16 words over 3 s; the client reads the first chunk and hangs up. What it was
    sent is recorded as a completed answer that ended with the client."""
    body = {"model": "patient", "messages": PROMPT, "max_tokens": 16, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {gateway.keys['app']}"}) as response:
        assert response.status_code == 200
        request_id = response.headers["x-tunegate-request-id"]
        next(response.iter_raw())
    client = redis.Redis.from_url(gateway.redis_url)

    def recorded() -> list[str]:
        return [e.payload["finish_reason"] for e in read_stream(client, "tunegate.inference")
                if e.type == "inference.completed" and e.payload["request_id"] == request_id]

    assert wait_for(recorded, 30, "the record of the abandoned stream") == ["client_disconnected"]


def test_a_client_that_hangs_up_still_pays_for_what_the_model_produced(gateway: GatewayHarness) -> None:
    """The reservation (prompt + max_tokens) is settled to the prompt and the text produced when the client
    leaves; once, it was settled to nothing, so hanging up after reading made every stream free."""
    key_id, _ = gateway.create_key("leaver", ["*"], tokens_per_day=100_000)
    wait_for(lambda: gateway.client("leaver").models.list().data, 30, "the key")
    body = {"model": "patient", "messages": PROMPT, "max_tokens": 16, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {gateway.keys['leaver']}"}) as response:
        request_id = response.headers["x-tunegate-request-id"]
        for line in response.iter_lines():  # up to the first words the client is sent, then hang up
            if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                break
    client = redis.Redis.from_url(gateway.redis_url)
    record = wait_for(lambda: next((e.payload for e in read_stream(client, "tunegate.inference")
                                    if e.payload["request_id"] == request_id), None), 30, "the record")
    assert record["finish_reason"] == "client_disconnected"
    assert record["input_tokens"] > 0 and record["output_tokens"] > 0
    charged = record["input_tokens"] + record["output_tokens"]

    def used() -> int:
        return int(client.hget(f"tunegate:gateway:tokens:{key_id}", "used") or 0)

    wait_for(lambda: used() == charged, 30, f"the key charged {charged} tokens (now {used()})")


def test_no_answered_request_is_missing_from_the_ledger_after_a_sigkill(
    tmp_path: Path, tunegate_home: Path, redis_url: str, upstreams: tuple[str, str]
) -> None:
    """The audit record is durable in the outbox before the answer leaves; publication is in the background.
    Killing the gateway the moment the answers are in, then starting it again, loses none of them."""
    # tunegate_home is tmp_path / "home", the home start_gateway uses: it brings the outbox's database.
    harness = start_gateway(tmp_path, redis_url, upstreams)
    try:
        harness.create_key("app", ["frontier"])
        body = {"model": "frontier", "messages": PROMPT, "max_tokens": 2}
        wait_for(lambda: harness.post("app", "/v1/chat/completions", body).status_code == 200, 60, "the route")
        answered = [harness.post("app", "/v1/chat/completions", body) for _ in range(20)]
        assert harness.process is not None
        harness.process.kill()
        ids = {r.headers["x-tunegate-audit-event"] for r in answered if r.status_code == 200}
        assert len(ids) == 20
        harness.start(extra_env={"TUNEGATE_GATEWAY_UPSTREAMS_FILE": str(tmp_path / "routes.yaml"),
                                 "TUNEGATE_GATEWAY_POLICIES_FILE": str(tmp_path / "policies.yaml"),
                                 "TUNEGATE_TEST_FRONTIER_KEY": "sk-upstream-secret"})
        client = redis.Redis.from_url(redis_url)
        wait_for(lambda: ids <= {e.event_id for e in read_stream(client, "tunegate.inference")}, 30,
                 "every answered request on the stream")
        published = [e.event_id for e in read_stream(client, "tunegate.inference") if e.event_id in ids]
        assert len(published) >= len(ids)  # at least once; the ledger de-duplicates on the event id
    finally:
        harness.stop()


def test_while_redis_is_down_requests_are_refused_as_an_outage_not_served_unmetered(
    tmp_path: Path, tunegate_home: Path, redis_server: EmbeddedRedis, upstreams: tuple[str, str]
) -> None:
    """Budgets fail closed, and say so: 503 budget_unavailable with retry-after (once a 500 'internal_error',
    which a client cannot tell from a bug); served again once Redis is back."""
    harness = start_gateway(tmp_path, redis_server.url, upstreams)
    try:
        harness.create_key("app", ["frontier"])
        body = {"model": "frontier", "messages": PROMPT, "max_tokens": 2}
        wait_for(lambda: harness.post("app", "/v1/chat/completions", body).status_code == 200, 60, "the route")
        redis_server.stop()
        for stream in (False, True):
            refused = harness.post("app", "/v1/chat/completions", {**body, "stream": stream})
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "budget_unavailable"
            assert refused.headers["retry-after"] == "2"
        redis_server.start()
        wait_for(lambda: harness.post("app", "/v1/chat/completions", body).status_code == 200, 60, "service again")
    finally:
        harness.stop()


def test_a_broken_policies_file_stops_the_gateway_with_a_clear_error(
    tmp_path: Path, tunegate_home: Path, redis_url: str
) -> None:
    """Policies fail closed at start too: the gateway never serves without the policies it was given."""
    policies = tmp_path / "policies.yaml"
    policies.write_text("policies:\n  - name: strict\n    match: {tenants: '*', models: '*'}\n"
                        "    dlp: {prompt: {EMAIL_ADDRESS: shred}}\n")
    process = ServiceProcess("services.gateway", tunegate_home, redis_url,
                             extra_env={"TUNEGATE_GATEWAY_POLICIES_FILE": str(policies)})
    assert process.process.wait(60) == 2
    log = process.log()
    assert "cannot start" in log and "strict" in log and "EMAIL_ADDRESS" in log
    assert "Traceback" not in log


def test_personal_data_in_a_stop_sequence_never_reaches_the_upstream(gateway: GatewayHarness) -> None:
    """A stop sequence goes to the provider as written: what the prompt's DLP would redact in a message is
    refused there (a redacted stop sequence would change where the answer stops), and audited as a refusal."""
    response = gateway.post("app", "/v1/chat/completions", {
        "model": "frontier", "messages": PROMPT, "max_tokens": 4, "stop": ["END", "jonas.silva@corp.local"]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "content_policy_violation"
    assert "a stop sequence contains EMAIL_ADDRESS (1)" in error["message"]
    assert "jonas.silva" not in error["message"]
    client = redis.Redis.from_url(gateway.redis_url)
    wait_for(lambda: any(e.type == "inference.blocked" and e.payload["stage"] == "prompt"
                         and e.payload["findings"] == {"EMAIL_ADDRESS": 1}
                         for e in read_stream(client, "tunegate.inference")), 30, "the refusal in the ledger")
    allowed = gateway.post("app", "/v1/chat/completions", {
        "model": "frontier", "messages": PROMPT, "max_tokens": 4, "stop": ["END", "\n\n"]})
    assert allowed.status_code == 200, allowed.text


def test_an_upstreams_error_message_passes_the_response_dlp(gateway: GatewayHarness) -> None:
    """Providers' validation errors quote the request back; the client gets them through the same DLP as an
    answer, so an error cannot carry what an answer could not."""
    # The default policy lets IP addresses into prompts and redacts them in anything a model says.
    response = gateway.post("app", "/v1/chat/completions", {"model": "echoing", "max_tokens": 4, "messages": [
        {"role": "user", "content": "Summarise ticket 4411 for me; it came from 203.0.113.42."}]})
    assert response.status_code == 502, response.text
    message = response.json()["error"]["message"]
    assert "upstream echoing answered 400: Invalid request" in message and "ticket 4411" in message
    assert "203.0.113" not in message and "<IP_ADDRESS>" in message


def test_an_upstream_that_ignores_max_tokens_is_cut_and_charged_no_more_than_was_reserved(
        gateway: GatewayHarness) -> None:
    """The `verbose` upstream answers 4,096 words whatever max_tokens says; once, each such answer was passed on
    whole and charged whole, so ten requests of max_tokens 8 took a 2,000-token key to 41,000."""
    key_id, _ = gateway.create_key("capped", ["*"], tokens_per_day=2_000)
    client = gateway.client("capped")
    wait_for(lambda: client.models.list().data, 30, "the key")
    whole = client.chat.completions.create(model="ignoring", messages=PROMPT, max_tokens=8)
    assert whole.choices[0].finish_reason == "length" and whole.usage.completion_tokens <= 8
    assert len(whole.choices[0].message.content.split()) <= 8
    streamed = list(client.chat.completions.create(model="ignoring", messages=PROMPT, max_tokens=8, stream=True,
                                                   stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert len(text.split()) <= 2 * 8 + 16
    assert [c.choices[0].finish_reason for c in streamed if c.choices and c.choices[0].finish_reason] == ["length"]
    assert streamed[-1].usage is not None and streamed[-1].usage.completion_tokens <= 8
    redis_client = redis.Redis.from_url(gateway.redis_url)
    charged = whole.usage.total_tokens + streamed[-1].usage.total_tokens
    wait_for(lambda: int(redis_client.hget(f"tunegate:gateway:tokens:{key_id}", "used") or 0) == charged, 30,
             f"the key charged {charged} tokens, the two answers' usage")


def test_a_body_that_trickles_in_is_refused_when_its_time_is_up(gateway: GatewayHarness) -> None:
    """A client that announces 1,000 bytes and sends one held its connection for ever (a few thousand such
    clients hold every connection the server has); it gets a 408 and the connection is closed."""
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 1000\r\nauthorization: Bearer " + gateway.keys["app"].encode() + b"\r\n\r\n{")
        started = time.monotonic()
        answer = b""
        while chunk := conn.recv(65536):  # until the server closes the connection
            answer += chunk
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer and b"did not arrive within 1.5 s (1 bytes came)" in answer
    assert 1.0 < waited < 9.0


def test_impossible_token_counts_from_an_upstream_do_not_break_the_budget(gateway: GatewayHarness) -> None:
    """An upstream reporting 1e308 prompt tokens and -5 completion tokens (once, this overflowed the key's
    daily counter in Redis to -2^63 and refused the key for the rest of the day): the gateway bills its own
    estimate instead, and the key keeps working."""
    gateway.create_key("miscounted", ["*"], tokens_per_day=5_000)
    client = gateway.client("miscounted")
    wait_for(lambda: client.models.list().data, 30, "the key")
    for _ in range(3):
        reply = client.chat.completions.create(model="miscounting", messages=PROMPT, max_tokens=4)
        assert reply.usage is not None
        assert 0 < reply.usage.prompt_tokens < 100 and 0 < reply.usage.completion_tokens < 50
    assert client.chat.completions.create(model="frontier", messages=PROMPT, max_tokens=4).choices
