"""What one gateway request carries through the pipeline (services/gateway/inference.py): the parsed body,
the facts collected on the way (the Exchange), the request the gateway agreed to send to a model (Prepared)
and the answer handed back to the HTTP layer; and the parsing of a body into OpenAI's request shapes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from services.gateway.adapters.generation import EngineError
from services.gateway.domain.routes import Route
from services.gateway.entrypoints.schemas import ChatCompletionRequest, CompletionRequest
from services.gateway.errors import GatewayError
from shared.json_input import parse_json, without_lone_surrogates
from shared.validation import describe_validation_error

Operation = Literal["chat", "text_completion"]
Body = ChatCompletionRequest | CompletionRequest


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def engine_refusal(exc: Exception) -> GatewayError:
    """The local engine refused the generation: a request it cannot serve (prompt plus max_tokens past the
    model's context) is the client's 400; an engine closing or a version unloaded mid-request is a 503."""
    if isinstance(exc, EngineError):
        return GatewayError(503, f"The model is not available right now: {exc}", type="server_error",
                            code="model_unavailable", stage="model", check="engine")
    return GatewayError(400, f"The model cannot serve this request: {exc}", code="context_length_exceeded",
                        stage="model", check="engine")


def is_json_media_type(content_type: str | None) -> bool:
    """No content type (OpenAI's clients always send one; curl without -H does not), application/json or an
    application/*+json type, with any parameters. A form or text body is refused rather than read as JSON."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def model_messages(body: ChatCompletionRequest, texts: list[str]) -> list[dict[str, str]]:
    """The chat as a model is given it: the (redacted) texts under their roles, a developer message as the
    system message it is to a model."""
    return [{"role": "system" if m.role == "developer" else m.role, "content": t}
            for m, t in zip(body.messages, texts, strict=True)]


def model_named(raw: bytes) -> str:
    """The model a body that failed validation names, read leniently so that its refusal is audited under it."""
    try:
        model = parse_json(raw).get("model")
    except (ValueError, AttributeError):
        return "(unreadable body)"
    return without_lone_surrogates(model[:200]) if isinstance(model, str) and model else "(no model named)"


def read_body(operation: Operation, raw: bytes) -> tuple[Body | GatewayError, str]:
    """The body in OpenAI's request shape, or the 400 that says why it is not one (raised by the caller once
    the key is checked: an unauthenticated client learns nothing about bodies), and the model it names. A
    valid body is parsed once; only a refused one is read a second time, for its model name."""
    model = ChatCompletionRequest if operation == "chat" else CompletionRequest
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        refusal = GatewayError(400, describe_validation_error(exc, root="body"), code="invalid_request",
                               stage="access", check="request_validation", param=_first_location(exc))
        return refusal, model_named(raw)
    return body, body.model


def _first_location(exc: ValidationError) -> str | None:
    errors = exc.errors()
    if errors and errors[0].get("loc"):
        return ".".join(str(part) for part in errors[0]["loc"])
    return None


@dataclass
class Exchange:
    """What one request has collected so far; the audit record is built from it."""

    request_id: str
    operation: Operation
    model: str
    started: float
    key: Any = None
    route: Route | None = None
    policy: Any = None
    prompt_sha256: str | None = None
    prompt_findings: dict[str, int] = field(default_factory=dict)
    model_seconds: float = 0.0
    span: Any = None
    detector: Any = None
    """The DLP detector the policy asks for (with or without NER)."""

    @property
    def model_version(self) -> str | None:
        return self.route.served_name if self.route else None

    def overhead_ms(self) -> float:
        return max(0.0, (time.perf_counter() - self.started - self.model_seconds) * 1000)


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str]
    stream: AsyncIterator[bytes] | None = None


@dataclass
class Prepared:
    """A request the gateway has agreed to send to a model."""

    exchange: Exchange
    body: Body
    texts: list[str]
    prompt: str  # the redacted prompt as the model sees it (local) or its text (upstream)
    prompt_tokens: int
    max_tokens: int
    admission: Any
    watermark: bool
