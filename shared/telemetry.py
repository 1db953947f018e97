"""OpenTelemetry setup: one tracer provider per service process; OTLP when configured, else JSON lines.

A job is one trace: every envelope carries a W3C traceparent, handlers run in a span whose parent is
the envelope's trace, and what they emit carries their own span as parent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.config import Settings

_PROPAGATOR = TraceContextTextMapPropagator()


class JsonLinesSpanExporter(SpanExporter):
    """Writes finished spans as JSON lines, so traces are inspectable without a collector."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            ctx = span.context
            lines.append(
                json.dumps(
                    {
                        "name": span.name,
                        "trace_id": format(ctx.trace_id, "032x"),
                        "span_id": format(ctx.span_id, "016x"),
                        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
                        "kind": span.kind.name,
                        "start_ns": span.start_time,
                        "end_ns": span.end_time,
                        "status": span.status.status_code.name,
                        "service": span.resource.attributes.get("service.name"),
                        "attributes": {k: _jsonable(v) for k, v in (span.attributes or {}).items()},
                        "links": [
                            {
                                "trace_id": format(link.context.trace_id, "032x"),
                                "span_id": format(link.context.span_id, "016x"),
                                "attributes": {k: _jsonable(v) for k, v in (link.attributes or {}).items()},
                            }
                            for link in span.links
                        ],
                    },
                    sort_keys=True,
                )
            )
        with self._lock, self._path.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def setup_tracing(service: str, settings: Settings) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": f"tunegate-{service}"}))
    exporter: SpanExporter
    if settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself
    else:
        exporter = JsonLinesSpanExporter(settings.path("traces", f"{service}.jsonl"))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    return provider


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> otel_context.Context:
    if not traceparent:
        return otel_context.Context()
    return _PROPAGATOR.extract({"traceparent": traceparent})


@contextmanager
def span_from(traceparent: str | None, name: str, tracer_name: str, **attributes: object) -> Iterator[Span]:
    """Start a span that continues the trace of an envelope (or a new trace when it has none)."""
    tracer = trace.get_tracer(tracer_name)
    with tracer.start_as_current_span(
        name,
        context=context_from_traceparent(traceparent),
        attributes=attributes,  # type: ignore[arg-type]
    ) as span:
        yield span


def messaging_attributes(
    envelope: Any, *, operation: str, group: str | None = None, stream: str | None = None
) -> dict[str, str]:
    """Current OpenTelemetry messaging semantic conventions for one event on a Redis stream."""
    attributes = {
        "messaging.system": "redis",
        "messaging.destination.name": stream or envelope.stream,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.message.id": envelope.event_id,
        "tunegate.event.type": envelope.type,
        "tunegate.subject": envelope.subject,
        "tunegate.producer": envelope.producer,
    }
    if group:
        attributes["messaging.consumer.group.name"] = group
    return attributes


@contextmanager
def attached(traceparent: str | None) -> Iterator[None]:
    """Make the envelope's trace current (e.g. while FastStream's middleware injects publish headers)."""
    token = otel_context.attach(context_from_traceparent(traceparent))
    try:
        yield
    finally:
        otel_context.detach(token)
