"""Streamed answers: the model's text as it comes (local engine or upstream SSE), through the policy's
response DLP with its holdback window, re-emitted as OpenAI chunks; the audit record is committed before the
last chunk, which carries the Art. 50 marking and the provenance signature (the headers left before the
text existed).

- The model's first piece is awaited before the status line is sent: a model or upstream that fails before
  its first token gets the client the same error status as a whole answer would (429 with retry-after, 502,
  504), not a 200 followed by an error event.
- A stream the response DLP cuts (a blocked entity type) ends with finish_reason `content_filter` and is
  audited as `inference.blocked` with what was found, as the whole answer would have been.
- Whatever way a stream ends (finished, cut, failed, or the client gone), the key's budget is charged the
  prompt and the text the model produced: the upstream's own count where it sent one, else the gateway's
  estimate. A client that hangs up after reading still pays for what it read.
- A client that goes away still leaves a completed, audited answer of what it was sent."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from services.gateway.adapters.upstream import UpstreamFailure
from services.gateway.domain.checks import estimate_tokens, overran
from services.gateway.domain.routes import LocalRoute, UpstreamRoute
from services.gateway.entrypoints import openai_shapes as shapes
from services.gateway.errors import GatewayError
from services.gateway.exchange import Answer, EngineError, Prepared, engine_refusal
from services.gateway.upstream_answers import upstream_refusal, upstream_request

if TYPE_CHECKING:
    from services.gateway.inference import Gateway

Delta = tuple[str, str | None]
"""(text, finish_reason) of one piece of the model's answer."""


@dataclass
class ModelOutput:
    """What the model has produced so far, for billing and the audit record: its text (before the DLP) and the
    token counts it reported, if it did."""

    prepared: Prepared
    text: list[str] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    estimated_tokens: int = 0
    """The gateway's running estimate of the text so far (per piece: at most a little above the whole's)."""

    def tokens(self) -> tuple[int, int]:
        """(prompt, completion) tokens to charge: the model's counts, else the gateway's estimates; never more
        output than the max_tokens the key reserved."""
        prompt = self.prompt_tokens if self.prompt_tokens is not None else self.prepared.prompt_tokens
        completion = self.completion_tokens
        if completion is None:
            completion = estimate_tokens("".join(self.text))
        return prompt, min(completion, self.prepared.max_tokens)


async def streaming_answer(gw: Gateway, prepared: Prepared) -> Answer:
    """The streamed answer, once the model has produced its first piece (or refused: raised, as for a whole
    answer, so the caller audits it and the client gets its status)."""
    ex = prepared.exchange
    output = ModelOutput(prepared)
    deltas = model_deltas(gw, prepared, output)
    try:
        first: Delta | None = await deltas.__anext__()
    except StopAsyncIteration:
        first = None
    except UpstreamFailure as exc:
        await gw.settle(prepared, 0)
        raise upstream_refusal(ex, exc) from None
    except GatewayError:
        await gw.settle(prepared, 0)
        raise
    except (EngineError, ValueError) as exc:  # a version unloaded since admission: a 503, as for a whole answer
        await gw.settle(prepared, 0)
        raise engine_refusal(exc) from None
    return Answer(200, None, gw.marking_headers(ex), stream=stream_body(gw, prepared, output, deltas, first))


async def model_deltas(gw: Gateway, prepared: Prepared, output: ModelOutput) -> AsyncIterator[Delta]:
    """(text, finish_reason) from the model; the time spent waiting for each is model time."""
    ex = prepared.exchange
    route = ex.route
    if isinstance(route, LocalRoute):
        engine, adapter = await gw.engine(route)
        chunks: AsyncIterator[Any] = engine.stream(gw.generation(prepared, adapter)).__aiter__()
    else:
        assert isinstance(route, UpstreamRoute)
        chunks = gw.upstream.stream(route, ex.operation, upstream_request(prepared)).__aiter__()
    try:
        while True:
            waited = time.perf_counter()
            try:
                piece = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except (EngineError, ValueError) as exc:
                raise engine_refusal(exc) from None
            finally:
                ex.model_seconds += time.perf_counter() - waited
            if isinstance(route, LocalRoute):
                if piece.finish_reason:
                    output.prompt_tokens, output.completion_tokens = piece.prompt_tokens, piece.completion_tokens
            else:
                if piece.prompt_tokens is not None:
                    output.prompt_tokens = piece.prompt_tokens
                if piece.completion_tokens is not None:
                    output.completion_tokens = piece.completion_tokens
                output.estimated_tokens += estimate_tokens(piece.text)
                if overran(output.estimated_tokens, prepared.max_tokens):  # an upstream ignoring max_tokens
                    yield "", "length"
                    return
            output.text.append(piece.text)
            if piece.text or piece.finish_reason:
                yield piece.text, piece.finish_reason
    finally:
        if hasattr(chunks, "aclose"):  # the upstream's connection, or the engine's row, is released now
            await chunks.aclose()


async def stream_body(gw: Gateway, prepared: Prepared, output: ModelOutput, deltas: AsyncIterator[Delta],
                      first: Delta | None) -> AsyncIterator[bytes]:
    ex = prepared.exchange
    body = prepared.body
    response_id = ("chatcmpl-" if ex.operation == "chat" else "cmpl-") + ex.request_id[4:]
    created = int(gw.clock())
    filtered = ex.policy.response_stream(ex.detector, gw.settings.holdback_chars)
    finish = "stop"
    sent: list[str] = []
    opening = True
    done = False

    def chunk(text: str | None, finish_reason: str | None = None, **extra: Any) -> bytes:
        nonlocal opening
        out = shapes.sse(shapes.chunk_body(ex.operation, response_id=response_id, created=created,
                                           model=ex.model, text=text, finish_reason=finish_reason,
                                           first=opening, **extra))
        opening = False
        return out

    def usage_chunk() -> bytes:
        return chunk(None, None, no_choices=True, usage_=shapes.usage(*output.tokens()))

    try:
        if ex.operation == "chat":
            yield chunk("")
        try:
            pending = first
            while pending is not None:
                text, reason = pending
                if reason:
                    finish = reason
                safe = filtered.feed(text) if text else ""
                if safe:
                    sent.append(safe)
                    yield chunk(safe)
                if filtered.blocked:  # a blocked entity type: stop the model, emit nothing more
                    break
                pending = await anext(deltas, None)
        finally:
            await deltas.aclose()  # type: ignore[attr-defined]  # an async generator's
        if not filtered.blocked:
            rest = filtered.finish()  # the held-back tail can hold the blocked entity too
            if rest:
                sent.append(rest)
                yield chunk(rest)
        prompt_tokens, completion_tokens = output.tokens()
        await gw.settle(prepared, prompt_tokens + completion_tokens)
        if filtered.blocked:
            shown = sum(len(piece) for piece in sent)
            cut = GatewayError(400, f"The response was withheld by policy {ex.policy.name}: {filtered.reason} "
                               f"(streamed: cut after {shown} characters)", code="content_filter",
                               stage="response", check="dlp", findings=dict(filtered.findings))
            event_id = await gw.blocked(ex, cut)
            done = True
            marking = shapes.marking(ex.model_version or ex.model, None, watermark=prepared.watermark,
                                     trace_id=gw.trace_id(ex))
            marking.update(audit_event_id=event_id, withheld=filtered.reason,
                           dlp={"prompt": ex.prompt_findings, "response": dict(filtered.findings)})
            yield chunk(None, "content_filter", tunegate=marking)
            if body.include_usage():
                yield usage_chunk()
            yield shapes.SSE_DONE
            return
        tunegate, _ = await gw.completed(
            prepared, text="".join(sent), finish=finish, prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, response_findings=dict(filtered.findings), streamed=True,
        )
        done = True
        yield chunk(None, finish, tunegate=tunegate)
        if body.include_usage():
            yield usage_chunk()
        yield shapes.SSE_DONE
        gw.end_span(ex, prompt_tokens, completion_tokens, finish)
    except (UpstreamFailure, GatewayError) as exc:
        failure = exc if isinstance(exc, GatewayError) else upstream_refusal(ex, exc)
        await gw.settle(prepared, sum(output.tokens()))  # the client was sent part of the answer
        await gw.blocked(ex, failure)
        done = True
        # The status line is gone; OpenAI's clients read an `error` member in a stream chunk.
        yield shapes.sse(shapes.error_body(failure.message, type_=failure.type, code=failure.code))
    finally:
        if not done:  # the client went away: what it was sent is still a completed, audited answer
            prompt_tokens, completion_tokens = output.tokens()
            await gw.settle(prepared, prompt_tokens + completion_tokens)
            await gw.completed(
                prepared, text="".join(sent), finish="client_disconnected", prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens, response_findings=dict(filtered.findings), streamed=True,
            )
            gw.end_span(ex, prompt_tokens, completion_tokens, "client_disconnected")
