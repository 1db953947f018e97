"""What the gateway asks an upstream route and how it takes the answer: the request it sends (the redacted
prompt, never the client's own body), the tokens it bills (the upstream's count where believable, never more
output than was reserved), an answer cut where an upstream ignored max_tokens, and an upstream's failure as
the client's error, its words through the response DLP first. The HTTP itself is adapters/upstream.py."""

from __future__ import annotations

from typing import Any

from services.gateway.adapters.upstream import UpstreamFailure, UpstreamReply
from services.gateway.domain.checks import cut_to_tokens, estimate_tokens, overran
from services.gateway.entrypoints.schemas import ChatCompletionRequest
from services.gateway.errors import GatewayError
from services.gateway.exchange import Exchange, Prepared, model_messages

MAX_UPSTREAM_MESSAGE = 500
"""The most of an upstream's error message a client is shown (after the response DLP has read all of it)."""


def upstream_request(prepared: Prepared) -> dict[str, Any]:
    """The OpenAI request body for the upstream (its model name is the adapter's to add)."""
    body = prepared.body
    out: dict[str, Any] = {"max_tokens": prepared.max_tokens, "temperature": body.temperature, "top_p": body.top_p}
    if body.stop is not None:
        out["stop"] = list(body.stop_strings())
    if body.seed is not None:
        out["seed"] = body.seed
    if isinstance(body, ChatCompletionRequest):
        out["messages"] = model_messages(body, prepared.texts)
    else:
        out["prompt"] = prepared.texts[0]
    return out


def within_max_tokens(text: str, finish: str, max_tokens: int) -> tuple[str, str]:
    """(text, finish_reason), cut at `max_tokens` with finish_reason length when the upstream clearly ignored
    it (checks.overran: an honest upstream is never cut)."""
    if overran(estimate_tokens(text), max_tokens):
        return cut_to_tokens(text, max_tokens), "length"
    return text, finish


def upstream_usage(reply: UpstreamReply, prepared: Prepared, text: str) -> tuple[int, int]:
    """The tokens an upstream call is billed: what the upstream reported, or the gateway's estimate where it
    reported nothing believable (adapters/upstream.py MAX_REPORTED_TOKENS); never more output than the
    max_tokens the key reserved, whatever the upstream produced past it."""
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else prepared.prompt_tokens
    completion = reply.completion_tokens if reply.completion_tokens is not None else estimate_tokens(text)
    return prompt, min(completion, prepared.max_tokens)


def upstream_refusal(ex: Exchange, failure: UpstreamFailure) -> GatewayError:
    """An upstream's failure as the client's error. The upstream's own words (often an echo of the request)
    pass the response DLP first: nothing an upstream says reaches the client unchecked."""
    message = failure.message
    verdict = ex.policy.check_response(message, ex.detector)
    if verdict.blocked:
        message = f"upstream {ex.model} failed ({failure.code}); its message was withheld: {verdict.reason}"
    else:  # cut only now: cut before the DLP, half an entity would no longer look like one
        message = verdict.text if len(verdict.text) <= MAX_UPSTREAM_MESSAGE else (
            verdict.text[:MAX_UPSTREAM_MESSAGE - 1] + "…")
    return GatewayError(failure.status, message, type="upstream_error", code=failure.code, stage="model",
                        check="upstream", retry_after=failure.retry_after)
