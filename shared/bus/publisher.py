"""Publishing from outside a service (the CLI, benchmarks): validate, then XADD through FastStream."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from faststream.redis import RedisBroker
from faststream.redis.opentelemetry import RedisTelemetryMiddleware
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from shared.config import Settings
from shared.events.envelope import Envelope
from shared.telemetry import attached, current_traceparent, setup_tracing


class Publisher:
    """An async publisher over one FastStream broker connection; use as `async with Publisher(url) as p`."""

    def __init__(self, redis_url: str) -> None:
        self.broker = RedisBroker(redis_url, middlewares=[RedisTelemetryMiddleware()], logger=None)

    async def __aenter__(self) -> Publisher:
        await self.broker.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.broker.stop()

    async def publish(self, envelope: Envelope) -> bytes:
        checked = Envelope.from_wire(envelope.to_wire())  # validated on publish, whatever built it
        with attached(checked.trace):
            return await self.broker.publish(
                checked.to_wire(),
                stream=checked.stream,
                correlation_id=checked.event_id,
                headers={"event_type": checked.type},
            )

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        """Pipelined publish: one round trip for many events (benchmarks, bulk replays)."""
        checked = [Envelope.from_wire(e.to_wire()) for e in envelopes]
        async with self.broker._connection.pipeline(transaction=False) as pipe:  # type: ignore[union-attr]
            for envelope in checked:
                await self.broker.publish(
                    envelope.to_wire(),
                    stream=envelope.stream,
                    correlation_id=envelope.event_id,
                    headers={"event_type": envelope.type},
                    pipeline=pipe,
                )
            await pipe.execute()


def publish(settings: Settings, envelopes: Sequence[Envelope], *, producer: str = "cli") -> None:
    """Synchronous publish for CLI commands. An envelope without a trace starts one here: a job submitted
    from the CLI is one trace from this span to its deployment."""
    provider = setup_tracing(producer, settings)
    tracer = trace.get_tracer(f"tunegate.{producer}")

    async def _run() -> None:
        async with Publisher(settings.resolved_redis_url()) as publisher:
            for envelope in envelopes:
                with tracer.start_as_current_span(f"publish {envelope.type}", kind=SpanKind.PRODUCER) as span:
                    span.set_attribute("tunegate.event_id", envelope.event_id)
                    span.set_attribute("tunegate.subject", envelope.subject)
                    if envelope.trace is None:
                        envelope = envelope.model_copy(update={"trace": current_traceparent()})
                    await publisher.publish(envelope)

    try:
        asyncio.run(_run())
    finally:
        provider.shutdown()
