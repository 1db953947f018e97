"""One request through the gateway: key, route, policy and DLP on the prompt, budget, the model (local
engine or upstream), DLP on the response, the audit record, provenance. The HTTP layer
(entrypoints/http.py) only turns bytes into a call here and an `Answer` back into bytes.

Order matters and is the same for every route: nothing reaches a model before the key, the route, the
policy and the budget have said yes; nothing reaches the client before the response DLP has seen it and the
audit record is durable (adapters/journal.py). Every request that names a model ends in exactly one
`inference.completed` or `inference.blocked`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError

from services.gateway.adapters.generation import EngineError
from services.gateway.adapters.model_runtime import ModelRuntime, ModelUnavailable
from services.gateway.adapters.upstream import UpstreamClient, UpstreamFailure
from services.gateway.domain.checks import estimate_tokens
from services.gateway.domain.routes import LocalRoute, Route, RouteNotFound, UpstreamRoute
from services.gateway.domain.state import GatewayState
from services.gateway.entrypoints import openai_shapes as shapes
from services.gateway.entrypoints.schemas import ChatCompletionRequest, CompletionRequest
from services.gateway.errors import GatewayError, model_not_found, unauthorised
from services.gateway.settings import GatewaySettings
from shared.events.inference import InferenceBlocked, InferenceCompleted
from shared.telemetry import context_from_traceparent
from shared.validation import describe_validation_error

log = logging.getLogger("tunegate.gateway")
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


def _model_named(raw: bytes) -> str:
    """The model a body names, read leniently so that a refused request is audited under it."""
    try:
        model = json.loads(raw).get("model")
    except (ValueError, AttributeError):
        return "(unreadable body)"
    return model[:200] if isinstance(model, str) and model else "(no model named)"


def parse_body(operation: Operation, raw: bytes) -> Body:
    model = ChatCompletionRequest if operation == "chat" else CompletionRequest
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise GatewayError(400, describe_validation_error(exc, root="body"), code="invalid_request",
                           stage="access", check="request_validation",
                           param=_first_location(exc)) from None


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


class Gateway:
    def __init__(
        self,
        *,
        settings: GatewaySettings,
        state: GatewayState,
        policies: Any,
        detectors: Any,
        limiter: Any,
        models: ModelRuntime,
        upstream: UpstreamClient,
        journal: Any,
        provenance: Any,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.state = state
        self.policies = policies
        self.detectors = detectors
        self.limiter = limiter
        self.models = models
        self.upstream = upstream
        self.journal = journal
        self.provenance = provenance
        self.clock = clock
        self._refunds: set[asyncio.Task[None]] = set()
        self.tracer = trace.get_tracer("tunegate.gateway")

    # ------------------------------------------------------------------------------------ entry

    async def answer(self, operation: Operation, raw: bytes, authorization: str | None,
                     traceparent: str | None) -> Answer:
        """Answer one request body (already size-capped by the HTTP layer)."""
        ex = Exchange(request_id=f"req_{uuid.uuid4().hex}", operation=operation, model=_model_named(raw),
                      started=time.perf_counter())
        ex.span = self.tracer.start_span(
            f"{operation if operation == 'chat' else 'text_completion'} {ex.model}", kind=SpanKind.SERVER,
            context=context_from_traceparent(traceparent),
            attributes={"gen_ai.operation.name": operation, "gen_ai.request.model": ex.model,
                        "tunegate.request_id": ex.request_id},
        )
        token = otel_context.attach(trace.set_span_in_context(ex.span))
        try:
            ex.key = self.authenticate(authorization)
            body = parse_body(operation, raw)
            ex.span.set_attribute("gen_ai.request.max_tokens", body.requested_max_tokens() or 0)
            prepared = await self._prepare(ex, body)
            if body.stream:
                return self._streaming(prepared)
            return await self._complete(prepared)
        except GatewayError as exc:
            await self._blocked(ex, exc)
            raise
        except Exception:
            log.exception("request %s failed", ex.request_id)
            failure = GatewayError(500, f"The gateway failed to answer request {ex.request_id}; it is logged "
                                   "under that id.", type="server_error", code="internal_error", stage="model",
                                   check="internal")
            await self._blocked(ex, failure)
            raise failure from None
        finally:
            otel_context.detach(token)

    def trace_id(self, ex: Exchange) -> str:
        return format(ex.span.get_span_context().trace_id, "032x")

    # ------------------------------------------------------------------------------------ before the model

    async def _prepare(self, ex: Exchange, body: Body) -> Prepared:
        try:
            route = self.state.routes.resolve(body.model, ex.key.tenant)
        except RouteNotFound:
            raise model_not_found(body.model) from None
        if not self.state.keys.may_call(ex.key, body.model, self._names_of(route)):
            raise model_not_found(body.model)
        ex.route = route
        ex.span.set_attribute("gen_ai.response.model", route.served_name)
        policy_name = route.alias if isinstance(route, LocalRoute) else route.name
        try:
            ex.policy = self.policies.for_request(ex.key.tenant, policy_name)
        except Exception as exc:  # no policy, or a broken one: fail closed
            raise GatewayError(403, f"no usable policy for tenant {ex.key.tenant} and model {policy_name}: {exc}",
                               type="policy_error", code="policy_error", stage="prompt", check="policy_error") from None

        chat = isinstance(body, ChatCompletionRequest)
        texts = [m.text() for m in body.messages] if chat else [body.prompt_text()]
        ex.prompt_sha256 = sha256_text("\x1e".join(texts))
        engine = None
        if isinstance(route, LocalRoute):  # the model's own tokenizer counts the input limit
            engine, _ = await self._engine(route)
        ex.detector = self.detectors.for_policy(ex.policy)
        verdict = ex.policy.check_prompt(
            texts, ex.detector, count_tokens=engine.count_tokens if engine is not None else estimate_tokens,
            roles=[m.role for m in body.messages] if chat else None,
        )
        ex.prompt_findings = dict(verdict.findings)
        if verdict.action == "block":
            raise GatewayError(400, f"Request blocked by policy {ex.policy.name}: {verdict.reason}",
                               code="content_policy_violation", stage="prompt", check=verdict.check,
                               findings=dict(verdict.findings), type="invalid_request_error")
        texts = list(verdict.texts)

        max_tokens = body.requested_max_tokens() or self.settings.default_max_tokens
        cap = ex.policy.output_token_cap(None, self.settings.max_output_tokens)
        if max_tokens > cap:
            raise GatewayError(400, f"max_tokens {max_tokens} exceeds the limit of {cap} for this model",
                               param="max_tokens", code="max_tokens_exceeded", stage="prompt",
                               check="max_output_tokens")
        watermark = False
        if engine is not None:
            assert isinstance(route, LocalRoute)
            prompt = engine.render_chat(self._messages(body, texts)) if chat else texts[0]
            prompt_tokens = engine.count_tokens(prompt)
            watermark = route.watermark
        else:
            prompt = "\n".join(texts)
            prompt_tokens = estimate_tokens(prompt)
        admission = await self.limiter.admit(
            ex.key.key_id, rpm=ex.key.limits.requests_per_minute, tokens_per_day=ex.key.limits.tokens_per_day,
            reserve_tokens=prompt_tokens + max_tokens,
        )
        if not admission.admitted:
            if admission.retry_after_header is None:  # this request alone is over the day's budget
                raise GatewayError(400, f"Request refused for key {ex.key.key_id}: {admission.reason}",
                                   code="request_over_budget", param="max_tokens", check=str(admission.limit))
            raise GatewayError(429, f"Rate limit reached for key {ex.key.key_id}: {admission.reason}",
                               type="rate_limit_error", code="rate_limit_exceeded", check=str(admission.limit),
                               retry_after=int(admission.retry_after_header))
        return Prepared(exchange=ex, body=body, texts=texts, prompt=prompt, prompt_tokens=prompt_tokens,
                        max_tokens=max_tokens, admission=admission, watermark=watermark)

    def authenticate(self, authorization: str | None) -> Any:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise unauthorised("No API key provided: send it as 'Authorization: Bearer <key>'.")
        try:
            return self.state.keys.authenticate(authorization[7:].strip())
        except Exception as exc:  # malformed, unknown or revoked: the key store says which, without the secret
            raise unauthorised(f"Incorrect API key provided: {exc}") from None

    def models_for(self, key: Any) -> list[dict[str, Any]]:
        """`GET /v1/models`: what this key may call, in OpenAI's model-object shape."""
        out = []
        for name, route in self.state.routes.names_for(key.tenant):
            if self.state.keys.may_call(key, name, self._names_of(route)):
                out.append({"id": name, "object": "model", "created": 0,
                            "owned_by": "tunegate" if route.kind == "local" else "upstream",
                            "tunegate": {"model_version": route.served_name, "route": route.kind}})
        return out

    @staticmethod
    def _names_of(route: Route) -> set[str]:
        if isinstance(route, LocalRoute):
            return {route.alias, route.version_id}
        return {route.name}

    @staticmethod
    def _messages(body: ChatCompletionRequest, texts: list[str]) -> list[dict[str, str]]:
        return [{"role": "system" if m.role == "developer" else m.role, "content": t}
                for m, t in zip(body.messages, texts, strict=True)]

    async def _engine(self, route: LocalRoute) -> tuple[Any, str | None]:
        try:
            return await self.models.ensure_loaded(route)
        except ModelUnavailable as exc:
            raise GatewayError(503, str(exc), type="server_error", code="model_unavailable", stage="model",
                               check="model_load") from None

    def _generation(self, prepared: Prepared, adapter: str | None) -> Any:
        from services.gateway.adapters.generation import GenerationRequest

        body = prepared.body
        return GenerationRequest(
            adapter=adapter, prompt=prepared.prompt, max_new_tokens=prepared.max_tokens,
            temperature=body.temperature,
            top_p=body.top_p, stop=body.stop_strings(), seed=body.seed, watermark=prepared.watermark,
        )

    def _upstream_body(self, prepared: Prepared) -> dict[str, Any]:
        body = prepared.body
        out: dict[str, Any] = {"max_tokens": prepared.max_tokens, "temperature": body.temperature,
                               "top_p": body.top_p}
        if body.stop is not None:
            out["stop"] = list(body.stop_strings())
        if body.seed is not None:
            out["seed"] = body.seed
        if isinstance(body, ChatCompletionRequest):
            out["messages"] = self._messages(body, prepared.texts)
        else:
            out["prompt"] = prepared.texts[0]
        return out

    # ------------------------------------------------------------------------------------ the model, whole

    async def _complete(self, prepared: Prepared) -> Answer:
        ex = prepared.exchange
        route = ex.route
        started = time.perf_counter()
        try:
            if isinstance(route, LocalRoute):
                engine, adapter = await self._engine(route)
                result = await engine.complete(self._generation(prepared, adapter))
                text, finish = result.text, result.finish_reason or "stop"
                prompt_tokens, completion_tokens = result.prompt_tokens, result.completion_tokens
            else:
                assert isinstance(route, UpstreamRoute)
                reply = await self.upstream.complete(route, ex.operation, self._upstream_body(prepared))
                text, finish, prompt_tokens, completion_tokens = self._read_upstream(reply, ex.operation, prepared)
        except UpstreamFailure as exc:
            await self._settle(prepared, 0)
            raise GatewayError(exc.status, exc.message, type="upstream_error", code=exc.code, stage="model",
                               check="upstream", retry_after=int(exc.retry_after) if (exc.retry_after or "").isdigit()
                               else None) from None
        except (EngineError, ValueError) as exc:
            await self._settle(prepared, 0)
            raise engine_refusal(exc) from None
        finally:
            ex.model_seconds += time.perf_counter() - started
        verdict = ex.policy.check_response(text, ex.detector)
        await self._settle(prepared, prompt_tokens + completion_tokens)
        if verdict.blocked:
            raise GatewayError(400, f"The response was withheld by policy {ex.policy.name}: {verdict.reason}",
                               code="content_filter", stage="response", check="dlp",
                               findings=dict(verdict.findings))
        text = verdict.text
        tunegate, headers = await self._completed(
            prepared, text=text, finish=finish, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            response_findings=dict(verdict.findings), streamed=False,
        )
        response_id = ("chatcmpl-" if ex.operation == "chat" else "cmpl-") + ex.request_id[4:]
        body = shapes.completion_body(
            ex.operation, response_id=response_id, created=int(self.clock()), model=ex.model, text=text,
            finish_reason=finish, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, tunegate=tunegate,
        )
        self._end_span(ex, prompt_tokens, completion_tokens, finish)
        return Answer(200, body, headers)

    def _read_upstream(self, reply: dict[str, Any], operation: Operation,
                       prepared: Prepared) -> tuple[str, str, int, int]:
        try:
            choice = reply["choices"][0]
            text = choice["message"]["content"] if operation == "chat" else choice["text"]
            usage = reply.get("usage") or {}
            return (text or "", choice.get("finish_reason") or "stop",
                    int(usage.get("prompt_tokens", prepared.prompt_tokens)),
                    int(usage.get("completion_tokens", estimate_tokens(text or ""))))
        except (KeyError, IndexError, TypeError, ValueError):
            raise UpstreamFailure(502, "upstream_error",
                                  f"upstream {prepared.exchange.model} answered without a usable choice") from None

    async def _settle(self, prepared: Prepared, used_tokens: int) -> None:
        """Return unused reserved tokens, off the answer's path (a refund that comes late only leaves the budget
        stricter for a moment)."""
        task = asyncio.get_running_loop().create_task(self._refund(prepared, used_tokens))
        self._refunds.add(task)
        task.add_done_callback(self._refunds.discard)

    async def _refund(self, prepared: Prepared, used_tokens: int) -> None:
        try:
            await self.limiter.settle(prepared.exchange.key.key_id, prepared.admission, used_tokens)
        except Exception:  # a failed refund only makes the budget stricter; never fail the answer for it
            log.warning("token settlement failed for %s", prepared.exchange.request_id, exc_info=True)

    # ------------------------------------------------------------------------------------ the model, streamed

    def _streaming(self, prepared: Prepared) -> Answer:
        ex = prepared.exchange
        headers = self._marking_headers(ex)
        return Answer(200, None, headers, stream=self._stream_body(prepared))

    async def _model_deltas(self, prepared: Prepared, usage: dict[str, int]) -> AsyncIterator[tuple[str, str | None]]:
        """(text, finish_reason) from the model; the time spent waiting for each is model time."""
        ex = prepared.exchange
        route = ex.route
        if isinstance(route, LocalRoute):
            engine, adapter = await self._engine(route)
            chunks = engine.stream(self._generation(prepared, adapter)).__aiter__()
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
        pieces = self.upstream.stream(route, ex.operation, self._upstream_body(prepared)).__aiter__()
        emitted = ""
        while True:
            waited = time.perf_counter()
            try:
                piece = await pieces.__anext__()
            except StopAsyncIteration:
                break
            finally:
                ex.model_seconds += time.perf_counter() - waited
            if piece.get("usage"):
                usage["prompt_tokens"] = int(piece["usage"].get("prompt_tokens", prepared.prompt_tokens))
                usage["completion_tokens"] = int(piece["usage"].get("completion_tokens", 0))
            for choice in piece.get("choices") or []:
                text = (choice.get("delta") or {}).get("content") if ex.operation == "chat" else choice.get("text")
                emitted += text or ""
                yield text or "", choice.get("finish_reason")
        usage.setdefault("prompt_tokens", prepared.prompt_tokens)
        usage.setdefault("completion_tokens", estimate_tokens(emitted))

    async def _stream_body(self, prepared: Prepared) -> AsyncIterator[bytes]:
        ex = prepared.exchange
        body = prepared.body
        response_id = ("chatcmpl-" if ex.operation == "chat" else "cmpl-") + ex.request_id[4:]
        created = int(self.clock())
        filtered = ex.policy.response_stream(ex.detector, self.settings.holdback_chars)
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
            deltas = self._model_deltas(prepared, usage)
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
            await self._settle(prepared, usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
            tunegate, _ = await self._completed(
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
            self._end_span(ex, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), finish)
        except (UpstreamFailure, GatewayError) as exc:
            failure = exc if isinstance(exc, GatewayError) else GatewayError(
                exc.status, exc.message, type="upstream_error", code=exc.code, stage="model", check="upstream")
            await self._settle(prepared, usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
            await self._blocked(ex, failure)
            done = True
            # The status line is gone; OpenAI's clients read an `error` member in a stream chunk.
            yield shapes.sse(shapes.error_body(failure.message, type_=failure.type, code=failure.code))
        finally:
            if not done:  # the client went away: what it was sent is still a completed, audited answer
                await self._settle(prepared, usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
                await self._completed(
                    prepared, text="".join(sent), finish="client_disconnected",
                    prompt_tokens=usage.get("prompt_tokens", prepared.prompt_tokens),
                    completion_tokens=usage.get("completion_tokens", 0),
                    response_findings=dict(filtered.findings), streamed=True,
                )
                self._end_span(ex, 0, 0, "client_disconnected")

    # ------------------------------------------------------------------------------------ audit, provenance

    def _marking_headers(self, ex: Exchange) -> dict[str, str]:
        return {
            "x-tunegate-ai-generated": "true",
            "x-tunegate-model-version": ex.model_version or "",
            "x-tunegate-request-id": ex.request_id,
            "x-tunegate-trace-id": self.trace_id(ex),
        }

    async def _completed(self, prepared: Prepared, *, text: str, finish: str, prompt_tokens: int,
                         completion_tokens: int, response_findings: dict[str, int],
                         streamed: bool) -> tuple[dict[str, Any], dict[str, str]]:
        ex = prepared.exchange
        response_sha = sha256_text(text)
        redacted = bool(ex.prompt_findings) or bool(response_findings)
        overhead = ex.overhead_ms()
        assert ex.route is not None and ex.prompt_sha256 is not None
        event = InferenceCompleted(
            request_id=ex.request_id, key_id=ex.key.key_id, tenant=ex.key.tenant, model=ex.model,
            model_version=ex.route.served_name, route=ex.route.kind, operation=ex.operation, streamed=streamed,
            prompt_sha256=ex.prompt_sha256, response_sha256=response_sha, input_tokens=prompt_tokens,
            output_tokens=completion_tokens, latency_ms=(time.perf_counter() - ex.started) * 1000,
            overhead_ms=overhead, policy=ex.policy.name, decision="redacted" if redacted else "allowed",
            prompt_findings=ex.prompt_findings, response_findings=response_findings, watermark=prepared.watermark,
            finish_reason=finish[:40],
            retained_prompt="\n".join(prepared.texts) if getattr(ex.policy, "retain_prompts", False) else None,
        )
        token = otel_context.attach(trace.set_span_in_context(ex.span))  # the event joins the request's trace
        try:
            event_id = await self.journal.record("inference.completed", event, actor=f"apikey:{ex.key.key_id}",
                                                 request_id=ex.request_id)
        finally:
            otel_context.detach(token)
        header, signed = self.provenance.sign(ex.route.served_name, response_sha, event_id)
        headers = {**self._marking_headers(ex), "x-tunegate-provenance": header,
                   "x-tunegate-audit-event": event_id, "x-tunegate-overhead-ms": f"{ex.overhead_ms():.3f}"}
        tunegate = shapes.marking(ex.route.served_name, signed, watermark=prepared.watermark,
                                  trace_id=self.trace_id(ex))
        tunegate["audit_event_id"] = event_id
        tunegate["dlp"] = {"prompt": ex.prompt_findings, "response": response_findings}
        tunegate["overhead_ms"] = round(ex.overhead_ms(), 3)
        return tunegate, headers

    async def _blocked(self, ex: Exchange, error: GatewayError) -> None:
        if ex.span is not None and ex.span.end_time is None:
            ex.span.set_status(Status(StatusCode.ERROR, error.code or error.check))
            ex.span.set_attribute("error.type", error.code or error.check)
            ex.span.end()
        if not error.audited:
            return
        event = InferenceBlocked(
            request_id=ex.request_id, key_id=getattr(ex.key, "key_id", None), tenant=getattr(ex.key, "tenant", None),
            model=ex.model[:200], model_version=ex.model_version, stage=error.stage, check=error.check[:80],
            policy=getattr(ex.policy, "name", None), reason=error.message[:4000], prompt_sha256=ex.prompt_sha256,
            findings=error.findings or {}, status_code=error.status,
        )
        actor = f"apikey:{ex.key.key_id}" if ex.key is not None else "anonymous"
        try:
            await self.journal.record("inference.blocked", event, actor=actor, request_id=ex.request_id)
        except Exception:
            log.exception("could not record the refusal of %s", ex.request_id)

    def _end_span(self, ex: Exchange, prompt_tokens: int, completion_tokens: int, finish: str) -> None:
        if ex.span.end_time is not None:
            return
        ex.span.set_attribute("gen_ai.usage.input_tokens", prompt_tokens)
        ex.span.set_attribute("gen_ai.usage.output_tokens", completion_tokens)
        ex.span.set_attribute("gen_ai.response.finish_reasons", [finish])
        ex.span.set_attribute("tunegate.overhead_ms", ex.overhead_ms())
        ex.span.end()
