"""Streamed answers: the model's text as it comes (local engine or upstream SSE), through the policy's
response DLP with its holdback window, re-emitted as OpenAI chunks; the audit record is committed before the
last chunk, which carries the Art. 50 marking and the provenance signature (the headers left before the
text existed). A client that goes away still leaves a completed, audited answer of what it was sent."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from services.gateway.adapters.upstream import UpstreamFailure
from services.gateway.domain.checks import estimate_tokens
from services.gateway.domain.routes import LocalRoute, UpstreamRoute
from services.gateway.entrypoints import openai_shapes as shapes
from services.gateway.errors import GatewayError
from services.gateway.exchange import Answer, EngineError, Prepared, engine_refusal

if TYPE_CHECKING:
    from services.gateway.inference import Gateway


def streaming_answer(gw: Gateway, prepared: Prepared) -> Answer:
    ex = prepared.exchange
    headers = gw.marking_headers(ex)
    return Answer(200, None, headers, stream=stream_body(gw, prepared))


async def model_deltas(gw: Gateway, prepared: Prepared, usage: dict[str, int]) -> AsyncIterator[tuple[str, str | None]]:
    """(text, finish_reason) from the model; the time spent waiting for each is model time."""
    ex = prepared.exchange
    route = ex.route
    if isinstance(route, LocalRoute):
        engine, adapter = await gw.engine(route)
        chunks = engine.stream(gw.generation(prepared, adapter)).__aiter__()
        while True:
            waited = time.perf_counter()
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except (EngineError, ValueError) as exc:
                raise engine_refusal(exc) from None
            finally:
                ex.model_seconds += time.perf_counter() - waited
            if chunk.finish_reason:
                usage["prompt_tokens"], usage["completion_tokens"] = chunk.prompt_tokens, chunk.completion_tokens
            yield chunk.text, chunk.finish_reason
        return
    assert isinstance(route, UpstreamRoute)
    pieces = gw.upstream.stream(route, ex.operation, gw.upstream_body(prepared)).__aiter__()
    emitted = ""
    while True:
        waited = time.perf_counter()
        try:
            piece = await pieces.__anext__()
        except StopAsyncIteration:
            break
        finally:
            ex.model_seconds += time.perf_counter() - waited
        if piece.prompt_tokens is not None:
            usage["prompt_tokens"] = piece.prompt_tokens
        if piece.completion_tokens is not None:
            usage["completion_tokens"] = piece.completion_tokens
        emitted += piece.text
        if piece.text or piece.finish_reason:
            yield piece.text, piece.finish_reason
    usage.setdefault("prompt_tokens", prepared.prompt_tokens)
    usage.setdefault("completion_tokens", estimate_tokens(emitted))


async def stream_body(gw: Gateway, prepared: Prepared) -> AsyncIterator[bytes]:
    ex = prepared.exchange
    body = prepared.body
    response_id = ("chatcmpl-" if ex.operation == "chat" else "cmpl-") + ex.request_id[4:]
    created = int(gw.clock())
    filtered = ex.policy.response_stream(ex.detector, gw.settings.holdback_chars)
    usage: dict[str, int] = {}
    finish = "stop"
    sent: list[str] = []
    first = True
    done = False

    def chunk(text: str | None, finish_reason: str | None = None, **extra: Any) -> bytes:
        nonlocal first
        out = shapes.sse(shapes.chunk_body(ex.operation, response_id=response_id, created=created,
                                           model=ex.model, text=text, finish_reason=finish_reason,
                                           first=first, **extra))
        first = False
        return out

    try:
        if ex.operation == "chat":
            yield chunk("")
        deltas = model_deltas(gw, prepared, usage)
        try:
            async for text, reason in deltas:
                if reason:
                    finish = reason
                safe = filtered.feed(text) if text else ""
                if safe:
                    sent.append(safe)
                    yield chunk(safe)
                if filtered.blocked:  # a blocked entity type: stop the model, emit nothing more
                    break
        finally:
            await deltas.aclose()
        if filtered.blocked:
            finish = "content_filter"
        else:
            rest = filtered.finish()
            if rest:
                sent.append(rest)
                yield chunk(rest)
        await gw.settle(prepared, usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
        tunegate, _ = await gw.completed(
            prepared, text="".join(sent), finish=finish, prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0), response_findings=dict(filtered.findings),
            streamed=True,
        )
        done = True
        yield chunk(None, finish, tunegate=tunegate)
        if body.include_usage():
            yield chunk(None, None, no_choices=True,
                        usage_=shapes.usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)))
        yield shapes.SSE_DONE
        gw.end_span(ex, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), finish)
    except (UpstreamFailure, GatewayError) as exc:
        failure = exc if isinstance(exc, GatewayError) else gw.upstream_refusal(ex, exc)
        await gw.settle(prepared, usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
        await gw.blocked(ex, failure)
        done = True
        # The status line is gone; OpenAI's clients read an `error` member in a stream chunk.
        yield shapes.sse(shapes.error_body(failure.message, type_=failure.type, code=failure.code))
    finally:
        if not done:  # the client went away: what it was sent is still a completed, audited answer
            await gw.settle(prepared, usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
            await gw.completed(
                prepared, text="".join(sent), finish="client_disconnected",
                prompt_tokens=usage.get("prompt_tokens", prepared.prompt_tokens),
                completion_tokens=usage.get("completion_tokens", 0),
                response_findings=dict(filtered.findings), streamed=True,
            )
            gw.end_span(ex, 0, 0, "client_disconnected")
