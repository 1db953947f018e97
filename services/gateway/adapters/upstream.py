"""Upstream routes: models behind an external OpenAI-compatible endpoint (a frontier model), called with
the key named in the route's `api_key_env`. The gateway applies the same policy, DLP, budgets and audit as
for local models; this adapter only speaks HTTP and turns the upstream's failures into specific errors.

Routes come from a YAML file (`TUNEGATE_GATEWAY_UPSTREAMS_FILE`):

    upstreams:
      - name: frontier            # the model name clients call
        base_url: https://api.example.com/v1
        model: gpt-4o-mini        # the upstream's own model name
        api_key_env: FRONTIER_API_KEY
        tenants: [demo-tenant]
        timeout_s: 30
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.domain.routes import UpstreamRoute
from shared.events.model_versions import TenantName
from shared.ids import MODEL_NAME_PATTERN
from shared.json_input import parse_json, without_lone_surrogates
from shared.yaml_models import load_yaml_model

MAX_UPSTREAM_BODY = 8 * 1024 * 1024
MAX_DETAIL_CHARS = 4_000
"""How much of an upstream's error message the gateway reads (and the response DLP checks); the client sees
at most the first 500 characters of what the DLP made of it (upstream_answers.py `upstream_refusal`): cutting before
the DLP could leave half a card number that no longer looks like one."""
MAX_RETRY_AFTER_S = 86_400
FINISH_REASONS = frozenset({"stop", "length", "content_filter", "tool_calls", "function_call"})
"""OpenAI's finish reasons. An upstream's other values are not passed on: the field would carry whatever an
upstream put there (text past the response DLP) to the client and into the audit record."""
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
MAX_REPORTED_TOKENS = 100_000_000
"""Far above any model's context: a token count an upstream reports above it (or negative, or not an integer)
is not believed; the gateway's own estimate is used instead, so no upstream can break a key's budget."""


class UpstreamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=MODEL_NAME_PATTERN)
    base_url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2_000)
    model: str = Field(min_length=1, max_length=200)
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")
    tenants: list[TenantName] = Field(min_length=1, max_length=100)
    timeout_s: float = Field(default=60.0, gt=0, le=3_600)


class UpstreamsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upstreams: list[UpstreamSpec] = Field(default_factory=list, max_length=1_000)


class UpstreamConfigError(ValueError):
    pass


def load_upstreams(path: Path | None) -> list[UpstreamRoute]:
    if path is None:
        return []
    parsed = load_yaml_model(path, UpstreamsFile, "upstreams file", UpstreamConfigError)
    names = [spec.name for spec in parsed.upstreams]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UpstreamConfigError(f"upstreams file {path}: names must be unique; repeated: {', '.join(duplicates)}")
    return [
        UpstreamRoute(
            name=spec.name, base_url=spec.base_url.rstrip("/"), upstream_model=spec.model,
            api_key_env=spec.api_key_env, tenants=frozenset(spec.tenants), timeout_s=spec.timeout_s,
        )
        for spec in parsed.upstreams
    ]


@dataclass
class UpstreamFailure(Exception):
    """What went wrong upstream, in words a client can act on; `status` is the gateway's answer (502/504/429).
    `message` may quote the upstream: it passes the response DLP before a client sees it."""

    status: int
    code: str
    message: str
    retry_after: int | None = None

    def __str__(self) -> str:
        return self.message


def _describe(body: bytes, reason: str | None) -> str:
    """The upstream's own error message (OpenAI's `error.message`, or a bare `error` string), else the HTTP
    reason phrase."""
    try:
        error = parse_json(body).get("error")
    except (ValueError, AttributeError):
        error = None
    detail = error.get("message") if isinstance(error, dict) else error
    if not isinstance(detail, str) or not detail.strip():
        detail = reason or "no detail"
    return without_lone_surrogates(detail[:MAX_DETAIL_CHARS])


def retry_after_seconds(value: str | None) -> int | None:
    """An upstream's Retry-After in whole seconds (ASCII digits only: "²" is a digit to Python but not to
    int()), at most a day; None for the HTTP-date form or anything else."""
    if value is None or not re.fullmatch(r"[0-9]{1,12}", value.strip()):
        return None
    return min(int(value.strip()), MAX_RETRY_AFTER_S)


def _failure(route: UpstreamRoute, status: int, body: bytes, reason: str | None,
             retry_after: str | None) -> UpstreamFailure:
    detail = _describe(body, reason)
    if status == 429:
        return UpstreamFailure(429, "upstream_rate_limited", f"upstream {route.name} is rate limiting: {detail}",
                               retry_after_seconds(retry_after))
    if status in (401, 403):
        return UpstreamFailure(502, "upstream_auth", f"upstream {route.name} refused the gateway's credentials "
                               f"({status}); check {route.api_key_env or 'its key'}")
    return UpstreamFailure(502, "upstream_error", f"upstream {route.name} answered {status}: {detail}")


@dataclass(frozen=True)
class UpstreamReply:
    """What an upstream answered, checked: its text, why it stopped, and the token counts it reported (None
    where it reported none, or none believable)."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


def _token_count(usage: object, name: str) -> int | None:
    value = usage.get(name) if isinstance(usage, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_REPORTED_TOKENS:
        return value
    return None


def _choice_text(route: UpstreamRoute, operation: str, choice: object, part: str) -> tuple[str, str | None]:
    """(text, finish_reason) of one choice, its text under `part` ("message" or a stream's "delta") in a chat;
    UpstreamFailure when the text is not text, or a whole answer's message is missing."""
    if not isinstance(choice, dict):
        raise UpstreamFailure(502, "upstream_error", f"upstream {route.name} sent a choice that is not an object")
    if operation == "chat":
        holder = choice.get(part)
        if part == "message" and not isinstance(holder, dict):
            raise UpstreamFailure(502, "upstream_error", f"upstream {route.name} answered without a usable choice")
        text = holder.get("content") if isinstance(holder, dict) else None
    else:
        text = choice.get("text")
    if text is not None and not isinstance(text, str):
        raise UpstreamFailure(502, "upstream_error", f"upstream {route.name} sent a {part} whose text is of type "
                              f"{type(text).__name__}, not a string")
    finish = choice.get("finish_reason")
    if not finish:
        finish = None
    elif not (isinstance(finish, str) and finish in FINISH_REASONS):
        finish = "stop"
    return without_lone_surrogates(text) if text else "", finish


def read_reply(route: UpstreamRoute, operation: str, reply: object) -> UpstreamReply:
    """An upstream's non-streamed answer (OpenAI's shape), or UpstreamFailure saying what is wrong with it."""
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not isinstance(choices, list) or not choices:
        raise UpstreamFailure(502, "upstream_error", f"upstream {route.name} answered without a usable choice")
    text, finish = _choice_text(route, operation, choices[0], "message")
    usage = reply.get("usage") if isinstance(reply, dict) else None
    return UpstreamReply(text, finish, _token_count(usage, "prompt_tokens"), _token_count(usage, "completion_tokens"))


def read_chunk(route: UpstreamRoute, operation: str, chunk: object) -> list[UpstreamReply]:
    """The pieces of one streamed chunk: one per choice, and one without text for a usage-only chunk."""
    if not isinstance(chunk, dict):
        raise UpstreamFailure(502, "upstream_error", f"upstream {route.name} sent a malformed stream chunk")
    if chunk.get("error") is not None:  # how OpenAI-compatible servers report a failure once the stream is open
        detail = _describe(json.dumps({"error": chunk["error"]}).encode(), "no detail")
        raise UpstreamFailure(502, "upstream_error", f"upstream {route.name} failed mid-stream: {detail}")
    choices = chunk.get("choices") or []
    if not isinstance(choices, list):
        raise UpstreamFailure(502, "upstream_error", f"upstream {route.name} sent a malformed stream chunk")
    usage = chunk.get("usage")
    counts = (_token_count(usage, "prompt_tokens"), _token_count(usage, "completion_tokens"))
    pieces = [UpstreamReply(*_choice_text(route, operation, choice, "delta"), *counts) for choice in choices]
    if not pieces and isinstance(usage, dict):
        pieces.append(UpstreamReply("", None, *counts))
    return pieces


class UpstreamClient:
    """One pooled HTTP client (aiohttp: a fraction of httpx's CPU per request, which is the gateway's added
    latency) for every upstream route, created on first use inside the serving event loop."""

    def __init__(self, *, max_body_bytes: int = MAX_UPSTREAM_BODY) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.max_body_bytes = max_body_bytes
        """The most an upstream may send for one answer, whole or streamed: an upstream that ignores max_tokens
        would otherwise fill the gateway's memory within its timeout."""

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=256, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                                  json_serialize=lambda obj: json.dumps(obj, separators=(",", ":")))
        return self._session

    def _headers(self, route: UpstreamRoute) -> dict[str, str]:
        if not route.api_key_env:
            return {}
        key = os.environ.get(route.api_key_env)
        if not key:
            raise UpstreamFailure(502, "upstream_key_missing",
                                  f"upstream {route.name}: environment variable {route.api_key_env} is not set")
        return {"authorization": f"Bearer {key}"}

    def _url(self, route: UpstreamRoute, operation: str) -> str:
        return f"{route.base_url}/{'chat/completions' if operation == 'chat' else 'completions'}"

    async def complete(self, route: UpstreamRoute, operation: str, body: dict[str, Any]) -> UpstreamReply:
        payload = {**body, "model": route.upstream_model, "stream": False}
        try:
            async with self._client().post(
                self._url(route, operation), json=payload, headers=self._headers(route),
                timeout=aiohttp.ClientTimeout(total=route.timeout_s),
            ) as response:
                content = await response.content.read(self.max_body_bytes + 1)
                if response.status != 200:
                    raise _failure(route, response.status, content, response.reason,
                                   response.headers.get("retry-after"))
        except TimeoutError:
            raise UpstreamFailure(504, "upstream_timeout",
                                  f"upstream {route.name} did not answer within {route.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamFailure(502, "upstream_unreachable",
                                  f"upstream {route.name} unreachable: {type(exc).__name__}") from None
        if len(content) > self.max_body_bytes:
            raise UpstreamFailure(502, "upstream_error",
                                  f"upstream {route.name} answered more than {self.max_body_bytes} bytes")
        try:
            reply = parse_json(content)
        except ValueError:
            raise UpstreamFailure(502, "upstream_error", f"upstream {route.name} answered with invalid JSON") from None
        return read_reply(route, operation, reply)

    async def stream(self, route: UpstreamRoute, operation: str, body: dict[str, Any]) -> AsyncIterator[UpstreamReply]:
        """The upstream's SSE chunks, parsed and checked (`read_chunk`); the gateway re-emits the text through
        its own response DLP. The timeout bounds the whole stream and each wait for the next line."""
        payload = {**body, "model": route.upstream_model, "stream": True,
                   "stream_options": {"include_usage": True}}
        timeout = aiohttp.ClientTimeout(total=route.timeout_s, sock_read=route.timeout_s)
        try:
            async with self._client().post(
                self._url(route, operation), json=payload, headers=self._headers(route), timeout=timeout,
            ) as response:
                if response.status != 200:
                    content = await response.content.read(self.max_body_bytes)
                    raise _failure(route, response.status, content, response.reason,
                                   response.headers.get("retry-after"))
                finished = False
                async for data in self._event_data(route, response):
                    if data == "[DONE]":
                        return
                    try:
                        chunk = parse_json(data)
                    except ValueError:
                        raise UpstreamFailure(502, "upstream_error",
                                              f"upstream {route.name} sent a malformed stream chunk") from None
                    for piece in read_chunk(route, operation, chunk):
                        finished = finished or piece.finish_reason is not None
                        yield piece
                if not finished:  # a connection cut mid-answer is not a whole answer
                    raise UpstreamFailure(502, "upstream_error", f"upstream {route.name} ended its stream before "
                                          "the answer finished (no finish_reason, no [DONE])")
        except TimeoutError:
            raise UpstreamFailure(504, "upstream_timeout",
                                  f"upstream {route.name} stalled for more than {route.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamFailure(502, "upstream_unreachable",
                                  f"upstream {route.name} unreachable: {type(exc).__name__}") from None

    async def _event_data(self, route: UpstreamRoute, response: aiohttp.ClientResponse) -> AsyncIterator[str]:
        """The data of each server-sent event, read as the SSE specification says: lines end in CRLF, LF or CR;
        an event's `data:` lines are joined with LF and it ends at a blank line; comments and other fields
        are skipped. At most `max_body_bytes` in all."""
        received = 0
        pending = b""
        data: list[str] = []
        async for block in response.content.iter_any():
            received += len(block)
            if received > self.max_body_bytes:
                raise UpstreamFailure(502, "upstream_error", f"upstream {route.name} streamed more than "
                                      f"{self.max_body_bytes} bytes for one answer")
            pending += block
            # A CR at the very end may be the first half of a CRLF: it waits for the next block.
            complete = len(pending) - 1 if pending.endswith(b"\r") else len(pending)
            lines = _LINE_BREAK.split(pending[:complete])
            pending = lines.pop() + pending[complete:]
            for line in lines:
                if not line:
                    if data:
                        yield "\n".join(data)
                        data = []
                    continue
                field, _, value = line.partition(b":")
                if field == b"data":
                    data.append(value.removeprefix(b" ").decode("utf-8", "replace"))
        if pending.strip(b"\r"):  # a last line with no line break after it
            field, _, value = pending.strip(b"\r").partition(b":")
            if field == b"data":
                data.append(value.removeprefix(b" ").decode("utf-8", "replace"))
        if data:
            yield "\n".join(data)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
