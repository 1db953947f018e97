"""OpenAI's response, streaming-chunk and error shapes, built as plain dicts (the hot path serialises them
once). The `tunegate` member of every body is the EU AI Act Art. 50 marking: the text is AI-generated, by
which model version, with the provenance signature that `tunegate verify-response` checks."""

from __future__ import annotations

import json
from typing import Any, Literal

Operation = Literal["chat", "text_completion"]


def error_body(message: str, *, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def marking(model_version: str, provenance: dict[str, Any] | None, *, watermark: bool,
            trace_id: str | None) -> dict[str, Any]:
    return {
        "ai_generated": True,
        "model_version": model_version,
        "watermark": watermark,
        "provenance": provenance,
        "trace_id": trace_id,
    }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(
    operation: Operation, *, response_id: str, created: int, model: str, text: str, finish_reason: str,
    prompt_tokens: int, completion_tokens: int, tunegate: dict[str, Any],
) -> dict[str, Any]:
    if operation == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        obj = "text_completion"
    return {
        "id": response_id,
        "object": obj,
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage(prompt_tokens, completion_tokens),
        "system_fingerprint": None,
        "tunegate": tunegate,
    }


def chunk_body(
    operation: Operation, *, response_id: str, created: int, model: str, text: str | None,
    finish_reason: str | None, first: bool = False, usage_: dict[str, int] | None = None,
    tunegate: dict[str, Any] | None = None, no_choices: bool = False,
) -> dict[str, Any]:
    if no_choices:
        choices: list[dict[str, Any]] = []
    elif operation == "chat":
        delta: dict[str, Any] = {}
        if first:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    else:
        choices = [{"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}]
    body: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion.chunk" if operation == "chat" else "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if usage_ is not None:
        body["usage"] = usage_
    if tunegate is not None:
        body["tunegate"] = tunegate
    return body


def sse(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body, separators=(",", ":")).encode("utf-8") + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
