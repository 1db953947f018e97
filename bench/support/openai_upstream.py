"""A minimal, fast OpenAI-compatible upstream on loopback: the model behind the proxies in the overhead bench,
and a real HTTP upstream for tests.

It answers `POST /v1/chat/completions` and `POST /v1/completions` (streamed as server-sent events or not) with
a deterministic text, and `GET /v1/models`. A raw ASGI app on uvicorn, no framework, no per-request logging,
so its own cost stays small and equal for every proxy measured in front of it.

Knobs: `delay_ms` (a fixed model time per request, slept before answering, or between stream chunks spread
evenly), the request's `max_tokens` (how many words the answer has, default 16), the header
`x-upstream-delay-ms` (a per-request delay, for timeout tests), and the model names `fail-<status>` (answers
with that HTTP status and an OpenAI error body, for upstream-error tests), `echo-error` (a 400 whose message
quotes the first message, as real providers' validation errors do), `bogus-usage` (an answer reporting
impossible token counts), `verbose` (ignores max_tokens: always the longest answer), `recite` (always
answers RECITED, which holds an e-mail address, for response-DLP tests), `numbered` (the answer ends
"order <n>", n the first number in the request's last message, as an answer quoting an order number would:
every prompt of the overhead bench gets its own answer, which the proxy's response DLP cannot serve from a
cache), and, streamed, `stream-error` (an error chunk after half the words) and `stream-cut` (the connection
closes after half the words, with no finish_reason and no [DONE]). Any other model name is served.

    with serve_upstream(delay_ms=0) as url:            # in a subprocess (the bench: its own CPU time)
    with serve_upstream(in_thread=True) as url:        # in a thread of this process (tests)
    python bench/support/openai_upstream.py --port 8001 --delay-ms 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MODEL = "bench-model"
WORDS = ("The", "order", "ships", "on", "Monday", "with", "two", "yellow", "lamps", "and", "a", "receipt.")
DEFAULT_MAX_TOKENS = 16
MAX_TOKENS_CAP = 4_096
MAX_BODY_BYTES = 4 * 1024 * 1024
CREATED = 1_700_000_000  # fixed: responses are byte-for-byte deterministic


def answer_words(max_tokens: int) -> list[str]:
    """The deterministic answer: WORDS repeated, `max_tokens` words (one "token" per word)."""
    return [WORDS[i % len(WORDS)] for i in range(max_tokens)]


class UpstreamApp:
    """The ASGI app. `delay_ms` is the model time of every request."""

    def __init__(self, *, delay_ms: float = 0.0, model: str = MODEL) -> None:
        self.delay_s = delay_ms / 1000.0
        self.model = model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/v1/models" and method == "GET":
            body = {"object": "list", "data": [{"id": self.model, "object": "model", "created": CREATED,
                                                "owned_by": "bench"}]}
            await _json(send, 200, body)
            return
        if path not in ("/v1/chat/completions", "/v1/completions"):
            await _error(send, 404, f"no route {method} {path}", "not_found_error")
            return
        if method != "POST":
            await _error(send, 405, f"{path} takes POST", "invalid_request_error")
            return
        raw = await _read_body(receive)
        if raw is None:
            await _error(send, 413, "request body too large", "invalid_request_error")
            return
        try:
            request = json.loads(raw)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            await _error(send, 400, f"request body is not a JSON object: {exc}", "invalid_request_error")
            return
        await self._complete(scope, request, chat=path == "/v1/chat/completions", send=send)

    async def _complete(self, scope: Scope, request: dict[str, Any], *, chat: bool, send: Send) -> None:
        model = str(request.get("model") or self.model)
        if model.startswith("fail-") and model[5:].isdigit():
            await _error(send, int(model[5:]), f"upstream failure {model[5:]} (asked for)", "api_error")
            return
        if model == "echo-error":
            first = (request.get("messages") or [{}])[0].get("content") if chat else request.get("prompt")
            await _error(send, 400, f"Invalid request: could not process {first!r}", "invalid_request_error")
            return
        try:
            max_tokens = int(request.get("max_tokens") or request.get("max_completion_tokens") or DEFAULT_MAX_TOKENS)
        except (TypeError, ValueError):
            await _error(send, 400, "max_tokens must be an integer", "invalid_request_error")
            return
        words = answer_words(MAX_TOKENS_CAP if model == "verbose" else max(1, min(max_tokens, MAX_TOKENS_CAP)))
        if model == "recite":
            words = RECITED.split(" ")
        elif model == NUMBERED:
            # As many words as asked for, the last two "order <n>": a number there reads as no personal data.
            words = [*words[:-2], "order", _first_number(request, chat)][-len(words):]
        delay_s = self.delay_s
        for name, value in scope.get("headers", []):
            if name == b"x-upstream-delay-ms":
                delay_s = float(value) / 1000.0
        prompt_tokens = _prompt_tokens(request, chat)
        ident = f"{'chatcmpl' if chat else 'cmpl'}-bench"
        if request.get("stream"):
            await self._stream(send, ident, model, words, delay_s, chat=chat, prompt_tokens=prompt_tokens,
                               include_usage=bool((request.get("stream_options") or {}).get("include_usage")))
            return
        if delay_s:
            await asyncio.sleep(delay_s)
        text = " ".join(words)
        choice: dict[str, Any] = (
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length", "logprobs": None}
            if chat else {"index": 0, "text": text, "finish_reason": "length", "logprobs": None}
        )
        await _json(send, 200, {
            "id": ident, "object": "chat.completion" if chat else "text_completion", "created": CREATED,
            "model": model, "choices": [choice],
            "usage": {"prompt_tokens": 1e308, "completion_tokens": -5} if model == "bogus-usage" else
                     {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                      "total_tokens": prompt_tokens + len(words)},
        })

    async def _stream(self, send: Send, ident: str, model: str, words: list[str], delay_s: float, *, chat: bool,
                      prompt_tokens: int, include_usage: bool) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        kind = "chat.completion.chunk" if chat else "text_completion"
        pause = delay_s / len(words)
        for index, word in enumerate(words):
            if pause:
                await asyncio.sleep(pause)
            if model in ("stream-error", "stream-cut") and index == len(words) // 2:
                if model == "stream-error":
                    failure = {"error": {"message": "the model server failed mid-answer", "type": "server_error"}}
                    await send({"type": "http.response.body", "body": _sse(failure), "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            piece = word if index == 0 else f" {word}"
            last = index == len(words) - 1
            choice: dict[str, Any] = (
                {"index": 0, "delta": {"role": "assistant", "content": piece} if index == 0 else {"content": piece},
                 "finish_reason": "length" if last else None}
                if chat else {"index": 0, "text": piece, "finish_reason": "length" if last else None}
            )
            chunk = {"id": ident, "object": kind, "created": CREATED, "model": model, "choices": [choice]}
            await send({"type": "http.response.body", "body": _sse(chunk), "more_body": True})
        if include_usage:
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                     "total_tokens": prompt_tokens + len(words)}
            chunk = {"id": ident, "object": kind, "created": CREATED, "model": model, "choices": [], "usage": usage}
            await send({"type": "http.response.body", "body": _sse(chunk), "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


RECITED = "Write to jane.doe@example.com for a refund of the order."
NUMBERED = "numbered"
_NUMBER = re.compile(r"\d+")


def _first_number(request: dict[str, Any], chat: bool) -> str:
    """The first number in the request's last message (or prompt), "0" when there is none."""
    if chat:
        messages = request.get("messages") or [{}]
        text = str(messages[-1].get("content", "")) if isinstance(messages[-1], dict) else ""
    else:
        text = str(request.get("prompt", ""))
    found = _NUMBER.search(text)
    return found.group(0) if found else "0"
"""What model `recite` answers: personal data a response DLP must act on (an e-mail address, whole in one
streamed word)."""


def _prompt_tokens(request: dict[str, Any], chat: bool) -> int:
    if chat:
        messages = request.get("messages") or []
        return sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))
    return len(str(request.get("prompt", "")).split())


def _sse(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


async def _read_body(receive: Receive) -> bytes | None:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        part = message.get("body", b"")
        size += len(part)
        if size > MAX_BODY_BYTES:
            return None
        parts.append(part)
        if not message.get("more_body"):
            return b"".join(parts)


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def _error(send: Send, status: int, message: str, kind: str) -> None:
    await _json(send, status, {"error": {"message": message, "type": kind, "param": None, "code": None}})


# ------------------------------------------------------------------------------------------- running it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, alive: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Until an OpenAI-shaped server at `url` answers GET /models (RuntimeError when `alive()` turns false)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"server on {url} exited before it was ready")
        try:
            if httpx.get(f"{url}/models", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on {url} not ready after {timeout_s:.0f}s")


@contextmanager
def serve_upstream(*, delay_ms: float = 0.0, model: str = MODEL, in_thread: bool = False) -> Iterator[str]:
    """Run the upstream on a free loopback port; yields its base URL (ending in /v1). In a subprocess by
    default, so its CPU time is not the caller's (and not under the caller's GIL)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    if in_thread:
        import uvicorn

        server = uvicorn.Server(_uvicorn_config(port, delay_ms, model))
        thread = threading.Thread(target=server.run, name=f"openai-upstream-{port}", daemon=True)
        thread.start()
        try:
            wait_ready(url, thread.is_alive)
            yield url
        finally:
            server.should_exit = True
            thread.join(timeout=10)
        return
    command = [sys.executable, str(Path(__file__).resolve()), "--port", str(port), "--delay-ms", str(delay_ms),
               "--model", model]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(url, lambda: process.poll() is None)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()


def _uvicorn_config(port: int, delay_ms: float, model: str) -> Any:
    import uvicorn

    return uvicorn.Config(
        UpstreamApp(delay_ms=delay_ms, model=model), host="127.0.0.1", port=port, log_level="warning",
        access_log=False, lifespan="on", backlog=2048, timeout_keep_alive=30,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="A minimal OpenAI-compatible upstream on loopback.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("UPSTREAM_PORT", "8001")))
    parser.add_argument("--delay-ms", type=float, default=0.0, help="model time per request")
    parser.add_argument("--model", default=MODEL)
    args = parser.parse_args()
    import uvicorn

    uvicorn.Server(_uvicorn_config(args.port, args.delay_ms, args.model)).run()


if __name__ == "__main__":
    main()
