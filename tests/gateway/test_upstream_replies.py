"""What an upstream answers is checked before the gateway believes it (adapters/upstream.py read_reply,
read_chunk): text must be text, and token counts that are negative, fractional, boolean or past any context
are not believed (the gateway bills its own estimate). A hostile or broken upstream gets a 502 that says
what was wrong, never a 500, and can neither inflate nor break a key's budget."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from services.gateway.adapters.upstream import (
    MAX_REPORTED_TOKENS,
    UpstreamClient,
    UpstreamFailure,
    UpstreamReply,
    read_chunk,
    read_reply,
    retry_after_seconds,
)
from services.gateway.domain.routes import UpstreamRoute

ROUTE = UpstreamRoute(name="frontier", base_url="http://127.0.0.1:1/v1", upstream_model="m", api_key_env=None,
                      tenants=frozenset({"t"}))


def answer(content: Any, usage: Any = None, finish: Any = "stop") -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
            "usage": usage}


def test_a_well_formed_answer_is_read_as_reported() -> None:
    reply = read_reply(ROUTE, "chat", answer("Hello.", {"prompt_tokens": 12, "completion_tokens": 3}))
    assert reply == UpstreamReply("Hello.", "stop", 12, 3)
    text = read_reply(ROUTE, "text_completion", {"choices": [{"text": "Hi", "finish_reason": "length"}]})
    assert text == UpstreamReply("Hi", "length", None, None)
    assert read_reply(ROUTE, "chat", answer(None, finish=None)) == UpstreamReply("", None, None, None)  # tool calls


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": -1_000_000, "completion_tokens": -5},
    {"prompt_tokens": 1e308, "completion_tokens": 2.5},
    {"prompt_tokens": True, "completion_tokens": "7"},
    {"prompt_tokens": MAX_REPORTED_TOKENS + 1, "completion_tokens": None},
    [12, 3],
    "lots",
])
def test_impossible_token_counts_are_not_believed(usage: Any) -> None:
    reply = read_reply(ROUTE, "chat", answer("fine", usage))
    assert (reply.text, reply.prompt_tokens, reply.completion_tokens) == ("fine", None, None)


@pytest.mark.parametrize(("body", "reason"), [
    (answer([{"type": "text", "text": "hi"}]), "text is of type list, not a string"),
    (answer({"a": 1}), "text is of type dict"),
    (answer(5), "text is of type int"),
    ({"choices": []}, "without a usable choice"),
    ({"choices": None}, "without a usable choice"),
    ({"choices": ["hi"]}, "a choice that is not an object"),
    ({"choices": [{"finish_reason": "stop"}]}, "without a usable choice"),
    ([1, 2], "without a usable choice"),
])
def test_answers_that_are_not_openai_shaped_are_a_specific_502(body: Any, reason: str) -> None:
    with pytest.raises(UpstreamFailure) as caught:
        read_reply(ROUTE, "chat", body)
    assert caught.value.status == 502 and caught.value.code == "upstream_error" and reason in caught.value.message
    assert caught.value.message.startswith("upstream frontier ")


@pytest.mark.parametrize("finish", [{"x": 1}, "s" * 500, "john.doe@example.com", 7, "STOP"])
def test_a_finish_reason_outside_openais_set_is_passed_on_as_stop(finish: Any) -> None:
    """The field went to the client and the audit record as the upstream wrote it, past the response DLP."""
    assert read_reply(ROUTE, "chat", answer("ok", finish=finish)).finish_reason == "stop"


@pytest.mark.parametrize("finish", ["stop", "length", "content_filter", "tool_calls"])
def test_openais_finish_reasons_pass(finish: str) -> None:
    assert read_reply(ROUTE, "chat", answer("ok", finish=finish)).finish_reason == finish


def test_lone_surrogates_from_an_upstream_become_replacement_characters() -> None:
    reply = read_reply(ROUTE, "chat", json.loads('{"choices": [{"message": {"content": "a\\ud800b"}, '
                                                 '"finish_reason": "stop"}]}'))
    assert reply.text == "a\ufffdb"
    reply.text.encode("utf-8")  # hashable, storable, sendable


@pytest.mark.parametrize(("header", "seconds"), [("30", 30), ("\u00b2", None), ("99999999999999999999", None),
                                                 ("999999", 86_400), ("Wed, 21 Oct 2015 07:28:00 GMT", None),
                                                 (None, None), (" 7 ", 7)])
def test_an_upstreams_retry_after_is_read_strictly(header: str | None, seconds: int | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_an_upstream_error_chunk_fails_the_stream() -> None:
    with pytest.raises(UpstreamFailure) as caught:
        read_chunk(ROUTE, "chat", {"error": {"message": {"nested": "object"}, "type": "server_error"}})
    assert caught.value.status == 502 and "failed mid-stream" in caught.value.message


def test_stream_chunks() -> None:
    delta = {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}
    assert read_chunk(ROUTE, "chat", delta) == [UpstreamReply("Hel", None, None, None)]
    final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    assert read_chunk(ROUTE, "chat", final) == [UpstreamReply("", "stop", None, None)]
    usage_only = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": -2}}
    assert read_chunk(ROUTE, "chat", usage_only) == [UpstreamReply("", None, 9, None)]
    assert read_chunk(ROUTE, "chat", {"id": "x"}) == []
    for bad in ([1, 2], {"choices": "abc"}, {"choices": [{"delta": {"content": {"a": 1}}}]}):
        with pytest.raises(UpstreamFailure, match="upstream frontier"):
            read_chunk(ROUTE, "chat", bad)


def test_an_upstream_that_ignores_max_tokens_is_cut_at_the_byte_limit() -> None:
    """Whole or streamed, one answer may be at most max_body_bytes: an upstream ignoring max_tokens would
    otherwise fill the gateway's memory for as long as its timeout allows."""
    import asyncio

    from bench.support.openai_upstream import serve_upstream
    from services.gateway.adapters.upstream import UpstreamClient

    async def both(url: str) -> list[str]:
        route = UpstreamRoute(name="chatty", base_url=url, upstream_model="verbose", api_key_env=None,
                              tenants=frozenset({"t"}))
        client, default = UpstreamClient(max_body_bytes=8_192), UpstreamClient()
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        failures = []
        try:
            with pytest.raises(UpstreamFailure) as whole:
                await client.complete(route, "chat", body)
            failures.append(whole.value.message)
            with pytest.raises(UpstreamFailure) as streamed:
                async for _ in client.stream(route, "chat", body):
                    pass
            failures.append(streamed.value.message)
            assert (await default.complete(route, "chat", body)).text  # within the default limit
        finally:
            await client.aclose()
            await default.aclose()
        return failures

    with serve_upstream(in_thread=True) as url:
        whole, streamed = asyncio.run(both(url))
    assert whole == "upstream chatty answered more than 8192 bytes"
    assert streamed == "upstream chatty streamed more than 8192 bytes for one answer"


class _Blocks:
    """An upstream's streamed body, arriving in the given blocks (aiohttp's `response.content`)."""

    def __init__(self, blocks: list[bytes]) -> None:
        self.content = self
        self._blocks = blocks

    async def iter_any(self) -> Any:
        for block in self._blocks:
            yield block


def events(blocks: list[bytes], max_body_bytes: int = 1 << 20) -> list[str]:
    async def collect() -> list[str]:
        client = UpstreamClient(max_body_bytes=max_body_bytes)
        return [data async for data in client._event_data(ROUTE, _Blocks(blocks))]  # type: ignore[arg-type]

    return asyncio.run(collect())


@pytest.mark.parametrize("blocks", [
    [b'data: {"a": 1}\n\ndata: [DONE]\n\n'],
    [b'data: {"a": 1}\r\n\r\ndata: [DONE]\r\n\r\n'],
    [b'data: {"a": 1}\r\rdata: [DONE]\r\r'],
    [b'data: {"a": 1}\r', b'\n\r', b'\ndata: [DONE]\r\n\r\n'],  # a CRLF split between two blocks
    [b': keep-alive\n\nevent: message\nid: 7\ndata: {"a": 1}\n\n', b'data: [DONE]'],  # no line break at the end
    [b'data:{"a": 1}\n\ndata:[DONE]\n\n'],  # no space after the colon
])
def test_server_sent_events_are_read_as_the_specification_says(blocks: list[bytes]) -> None:
    assert events(blocks) == ['{"a": 1}', "[DONE]"]


def test_an_events_data_lines_are_joined() -> None:
    assert events([b'data: {"a":\ndata: 1}\n\n']) == ['{"a":\n1}']


def test_a_stream_over_the_byte_limit_is_a_502() -> None:
    with pytest.raises(UpstreamFailure) as caught:
        events([b"data: " + b"x" * 100 + b"\n\n"] * 3, max_body_bytes=250)
    assert caught.value.status == 502 and "more than 250 bytes" in caught.value.message
