"""The bench's OpenAI-compatible upstream (bench/support/openai_upstream.py), as the official client sees it:
the same server the overhead bench puts LiteLLM and the gateway in front of, and a loopback upstream for
the gateway's upstream-route tests; and the bare forwarder the bench measures as the floor
(bench/support/bare_proxy.py), which must pass answers and failures through unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from bench.support.bare_proxy import bare_proxy
from bench.support.openai_upstream import MODEL, NUMBERED, answer_words, serve_upstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_upstream(in_thread=True) as url:
        yield url


@pytest.fixture
def client(upstream: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream, api_key="sk-test", max_retries=0)


def test_the_numbered_model_quotes_the_number_of_each_prompt(client: openai.OpenAI) -> None:
    """Each prompt its own answer (the overhead bench: no proxy answers its response DLP from a cache)."""
    for n in ("418", "731204519662"):
        chat = client.chat.completions.create(model=NUMBERED, max_tokens=4, messages=[
            {"role": "user", "content": "ignored 1"}, {"role": "user", "content": f"Where is order {n}? Due 2 May."}])
        assert chat.choices[0].message.content == " ".join([*answer_words(4)[:2], "order", n])
    text = client.completions.create(model=NUMBERED, prompt="no number here", max_tokens=1)
    assert text.choices[0].text == "0"


def test_chat_and_completions_answer_deterministically(client: openai.OpenAI) -> None:
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi there"}],
                                          max_tokens=5)
    assert chat.choices[0].message.content == " ".join(answer_words(5))
    assert chat.usage is not None and (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (2, 5)
    text = client.completions.create(model="any-name", prompt="one two three", max_tokens=3)
    assert text.choices[0].text == " ".join(answer_words(3)) and text.model == "any-name"
    assert [m.id for m in client.models.list()] == [MODEL]


def test_streams_assemble_to_the_same_text(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=7,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == " ".join(answer_words(7))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
    pieces = client.completions.create(model=MODEL, prompt="x", max_tokens=4, stream=True)
    assert "".join(c.choices[0].text for c in pieces) == " ".join(answer_words(4))


def test_failures_on_request(client: openai.OpenAI, upstream: str) -> None:
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model="fail-503", messages=[{"role": "user", "content": "x"}])
    assert failed.value.status_code == 503
    slow = openai.OpenAI(base_url=upstream, api_key="sk-test", max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        slow.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                     extra_headers={"x-upstream-delay-ms": "2000"})
    bad = openai.OpenAI(base_url=upstream, api_key="sk-test", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                    extra_body={"max_tokens": "many"})


def test_the_bare_forwarder_passes_answers_and_failures_through(upstream: str) -> None:
    with bare_proxy(upstream) as (base_url, _):
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi there"}],
                                              max_tokens=4)
        assert chat.choices[0].message.content == " ".join(answer_words(4))
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="fail-429", messages=[{"role": "user", "content": "x"}])
        assert failed.value.status_code == 429
