"""What an upstream answers is checked before the gateway believes it (adapters/upstream.py read_reply,
read_chunk): text must be text, and token counts that are negative, fractional, boolean or past any context
are not believed (the gateway bills its own estimate). A hostile or broken upstream gets a 502 that says
what was wrong, never a 500, and can neither inflate nor break a key's budget."""

from __future__ import annotations

from typing import Any

import pytest

from services.gateway.adapters.upstream import (
    MAX_REPORTED_TOKENS,
    UpstreamFailure,
    UpstreamReply,
    read_chunk,
    read_reply,
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


def test_a_finish_reason_that_is_not_a_string_is_ignored_and_a_long_one_cut() -> None:
    assert read_reply(ROUTE, "chat", answer("ok", finish={"x": 1})).finish_reason is None
    assert read_reply(ROUTE, "chat", answer("ok", finish="s" * 500)).finish_reason == "s" * 40


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
