"""One request through the gateway: key, route, policy and DLP on the prompt, budget, the model (local
engine or upstream), DLP on the response, the audit record, provenance. The HTTP layer
(entrypoints/http.py) only turns bytes into a call here and an `Answer` back into bytes.

Order matters and is the same for every route: nothing reaches a model before the key, the route, the
policy and the budget have said yes; nothing reaches the client before the response DLP has seen it and the
audit record is durable (adapters/journal.py). Every request that names a model ends in exactly one
`inference.completed` or `inference.blocked`."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.gateway.adapters.model_runtime import ModelRuntime, ModelUnavailable
from services.gateway.adapters.rate_limits import BudgetUnavailable, Settlements
from services.gateway.adapters.upstream import UpstreamClient, UpstreamFailure
from services.gateway.domain.checks import estimate_tokens
from services.gateway.domain.routes import LocalRoute, Route, RouteNotFound, UpstreamRoute
from services.gateway.domain.state import GatewayState
from services.gateway.entrypoints import openai_shapes as shapes
from services.gateway.entrypoints.schemas import ChatCompletionRequest
from services.gateway.errors import GatewayError, model_not_found, unauthorised
from services.gateway.exchange import (
    Answer,
    Body,
    EngineError,
    Exchange,
    Operation,
    Prepared,
    engine_refusal,
    is_json_media_type,
    model_messages,
    read_body,
    sha256_text,
)
from services.gateway.settings import GatewaySettings
from services.gateway.upstream_answers import upstream_refusal, upstream_request, upstream_usage, within_max_tokens
from shared.events.inference import InferenceBlocked, InferenceCompleted
from shared.json_input import without_lone_surrogates
from shared.telemetry import context_from_traceparent

log = logging.getLogger("tunegate.gateway")

BUDGET_RETRY_AFTER_S = 2
"""What a request refused because the budget store is unreachable is told to wait (Redis restarts in seconds)."""


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
        self.settlements = Settlements(limiter)
        self.tracer = trace.get_tracer("tunegate.gateway")

    # ------------------------------------------------------------------------------------ entry

    async def answer(self, operation: Operation, raw: bytes, authorization: str | None,
                     traceparent: str | None, content_type: str | None = None) -> Answer:
        """Answer one request body (already size-capped by the HTTP layer), sent with `content_type`."""
        started = time.perf_counter()
        body, model = read_body(operation, raw)
        ex = Exchange(request_id=f"req_{uuid.uuid4().hex}", operation=operation, model=model, started=started)
        ex.span = self.tracer.start_span(
            f"{operation if operation == 'chat' else 'text_completion'} {ex.model}", kind=SpanKind.SERVER,
            context=context_from_traceparent(traceparent),
            attributes={"gen_ai.operation.name": operation, "gen_ai.request.model": ex.model,
                        "tunegate.request_id": ex.request_id},
        )
        token = otel_context.attach(trace.set_span_in_context(ex.span))
        try:
            ex.key = self.authenticate(authorization)
            if not is_json_media_type(content_type):
                raise GatewayError(415, f"The body must be sent as application/json, not {content_type[:100]}.",
                                   code="unsupported_media_type", check="content_type")
            if isinstance(body, GatewayError):
                raise body
            ex.span.set_attribute("gen_ai.request.max_tokens", body.requested_max_tokens() or 0)
            prepared = await self._prepare(ex, body)
            if body.stream:
                return await self._streaming(prepared)
            return await self._complete(prepared)
        except GatewayError as exc:
            exc.headers = self.refusal_headers(ex, await self.blocked(ex, exc))
            raise
        except Exception:
            log.exception("request %s failed", ex.request_id)
            failure = GatewayError(500, f"The gateway failed to answer request {ex.request_id}; it is logged "
                                   "under that id.", type="server_error", code="internal_error", stage="model",
                                   check="internal")
            failure.headers = self.refusal_headers(ex, await self.blocked(ex, failure))
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
            engine, _ = await self.engine(route)
        ex.detector = self.detectors.for_policy(ex.policy)
        verdict = ex.policy.check_prompt(
            texts, ex.detector, count_tokens=engine.count_tokens if engine is not None else estimate_tokens,
            roles=[m.role for m in body.messages] if chat else None,
        )
        ex.prompt_findings = dict(verdict.findings)
        if verdict.action != "block":
            verdict = ex.policy.check_stop_sequences(body.stop_strings(), ex.detector) or verdict
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
            prompt = engine.render_chat(model_messages(body, texts)) if chat else texts[0]
            prompt_tokens = engine.count_tokens(prompt)
            watermark = route.watermark
        else:
            prompt = "\n".join(texts)
            prompt_tokens = estimate_tokens(prompt)
        try:
            admission = await self.limiter.admit(
                ex.key.key_id, rpm=ex.key.limits.requests_per_minute, tokens_per_day=ex.key.limits.tokens_per_day,
                reserve_tokens=prompt_tokens + max_tokens,
            )
        except BudgetUnavailable as exc:
            raise GatewayError(503, f"The key's budget cannot be checked right now ({exc}), and no request is "
                               "served unmetered; retry shortly.", type="server_error", code="budget_unavailable",
                               check="budget", retry_after=BUDGET_RETRY_AFTER_S) from None
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

    async def engine(self, route: LocalRoute) -> tuple[Any, str | None]:
        try:
            return await self.models.ensure_loaded(route)
        except ModelUnavailable as exc:
            raise GatewayError(503, str(exc), type="server_error", code="model_unavailable", stage="model",
                               check="model_load") from None

    def generation(self, prepared: Prepared, adapter: str | None) -> Any:
        from services.gateway.adapters.generation import GenerationRequest

        body = prepared.body
        return GenerationRequest(
            adapter=adapter, prompt=prepared.prompt, max_new_tokens=prepared.max_tokens,
            temperature=body.temperature,
            top_p=body.top_p, stop=body.stop_strings(), seed=body.seed, watermark=prepared.watermark,
        )

    # ------------------------------------------------------------------------------------ the model, whole

    async def _complete(self, prepared: Prepared) -> Answer:
        ex = prepared.exchange
        route = ex.route
        started = time.perf_counter()
        try:
            if isinstance(route, LocalRoute):
                engine, adapter = await self.engine(route)
                result = await engine.complete(self.generation(prepared, adapter))
                text, finish = result.text, result.finish_reason or "stop"
                prompt_tokens, completion_tokens = result.prompt_tokens, result.completion_tokens
            else:
                assert isinstance(route, UpstreamRoute)
                reply = await self.upstream.complete(route, ex.operation, upstream_request(prepared))
                text, finish = within_max_tokens(reply.text, reply.finish_reason or "stop", prepared.max_tokens)
                prompt_tokens, completion_tokens = upstream_usage(reply, prepared, text)
        except UpstreamFailure as exc:
            await self.settle(prepared, 0)
            raise upstream_refusal(ex, exc) from None
        except (EngineError, ValueError) as exc:
            await self.settle(prepared, 0)
            raise engine_refusal(exc) from None
        finally:
            ex.model_seconds += time.perf_counter() - started
        verdict = ex.policy.check_response(text, ex.detector)
        if verdict.blocked:
            await self.settle(prepared, prompt_tokens + completion_tokens)
            raise GatewayError(400, f"The response was withheld by policy {ex.policy.name}: {verdict.reason}",
                               code="content_filter", stage="response", check="dlp",
                               findings=dict(verdict.findings))
        text = verdict.text
        try:
            tunegate, headers = await self.completed(
                prepared, text=text, finish=finish, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                response_findings=dict(verdict.findings), streamed=False,
            )
        finally:
            # Scheduled after the audit record, so the refund's Redis call runs after this answer is sent rather
            # than in the loop turn the record's commit waits for.
            await self.settle(prepared, prompt_tokens + completion_tokens)
        response_id = ("chatcmpl-" if ex.operation == "chat" else "cmpl-") + ex.request_id[4:]
        body = shapes.completion_body(
            ex.operation, response_id=response_id, created=int(self.clock()), model=ex.model, text=text,
            finish_reason=finish, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, tunegate=tunegate,
        )
        self.end_span(ex, prompt_tokens, completion_tokens, finish)
        return Answer(200, body, headers)

    async def settle(self, prepared: Prepared, used_tokens: int) -> None:
        """Return unused reserved tokens, off the answer's path (adapters/rate_limits.py Settlements)."""
        self.settlements.add(prepared.admission, used_tokens)

    # ------------------------------------------------------------------------------------ the model, streamed

    async def _streaming(self, prepared: Prepared) -> Answer:
        from services.gateway.streaming import streaming_answer

        return await streaming_answer(self, prepared)

    # ------------------------------------------------------------------------------------ audit, provenance

    def refusal_headers(self, ex: Exchange, event_id: str | None) -> dict[str, str]:
        """What a refused request's answer carries, so the client can quote it: the request and trace ids, and
        the audit record of the refusal when there is one."""
        headers = {"x-tunegate-request-id": ex.request_id, "x-tunegate-trace-id": self.trace_id(ex)}
        if event_id is not None:
            headers["x-tunegate-audit-event"] = event_id
        return headers

    def marking_headers(self, ex: Exchange) -> dict[str, str]:
        return {
            "x-tunegate-ai-generated": "true",
            "x-tunegate-model-version": ex.model_version or "",
            "x-tunegate-request-id": ex.request_id,
            "x-tunegate-trace-id": self.trace_id(ex),
        }

    async def completed(self, prepared: Prepared, *, text: str, finish: str, prompt_tokens: int,
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
        headers = {**self.marking_headers(ex), "x-tunegate-provenance": header,
                   "x-tunegate-audit-event": event_id, "x-tunegate-overhead-ms": f"{ex.overhead_ms():.3f}"}
        tunegate = shapes.marking(ex.route.served_name, signed, watermark=prepared.watermark,
                                  trace_id=self.trace_id(ex))
        tunegate["audit_event_id"] = event_id
        tunegate["dlp"] = {"prompt": ex.prompt_findings, "response": response_findings}
        tunegate["overhead_ms"] = round(ex.overhead_ms(), 3)
        return tunegate, headers

    async def blocked(self, ex: Exchange, error: GatewayError) -> str | None:
        """Record the refusal (`inference.blocked`); its event id, or None when it is not audited or could not
        be recorded (logged: the client still gets its refusal)."""
        if ex.span is not None and ex.span.end_time is None:
            ex.span.set_status(Status(StatusCode.ERROR, error.code or error.check))
            ex.span.set_attribute("error.type", error.code or error.check)
            ex.span.end()
        if not error.audited:
            return None
        actor = f"apikey:{ex.key.key_id}" if ex.key is not None else "anonymous"
        try:
            event = InferenceBlocked(
                request_id=ex.request_id, key_id=getattr(ex.key, "key_id", None),
                tenant=getattr(ex.key, "tenant", None), model=without_lone_surrogates(ex.model[:200]),
                model_version=ex.model_version, stage=error.stage, check=error.check[:80],
                policy=getattr(ex.policy, "name", None),
                reason=without_lone_surrogates(error.message[:4000]), prompt_sha256=ex.prompt_sha256,
                findings=error.findings or {}, status_code=error.status,
            )
            return await self.journal.record("inference.blocked", event, actor=actor, request_id=ex.request_id)
        except Exception:
            log.exception("could not record the refusal of %s", ex.request_id)
            return None

    def end_span(self, ex: Exchange, prompt_tokens: int, completion_tokens: int, finish: str) -> None:
        if ex.span.end_time is not None:
            return
        ex.span.set_attribute("gen_ai.usage.input_tokens", prompt_tokens)
        ex.span.set_attribute("gen_ai.usage.output_tokens", completion_tokens)
        ex.span.set_attribute("gen_ai.response.finish_reasons", [finish])
        ex.span.set_attribute("tunegate.overhead_ms", ex.overhead_ms())
        ex.span.end()
