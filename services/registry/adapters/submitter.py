"""Publishing a signed `job.requested` from the CLI: the trace is set before signing (the signature covers
it), inside the CLI's publish span, so the job's trace starts at the submit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shared.config import Settings
from shared.events.envelope import Envelope

Signer = Callable[[Envelope], Envelope]


def publish_signed(settings: Settings, envelope: Envelope, sign: Signer) -> Envelope:
    """Sign and publish one envelope; returns what was published."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    from shared.bus.publisher import Publisher
    from shared.telemetry import current_traceparent, setup_tracing

    redis_url = settings.resolved_redis_url()  # fails before anything is set up when no bus is configured
    provider = setup_tracing("cli", settings)
    tracer = trace.get_tracer("tunegate.cli")
    published: list[Envelope] = []

    async def run() -> None:
        async with Publisher(redis_url) as publisher:
            with tracer.start_as_current_span(f"publish {envelope.type}", kind=SpanKind.PRODUCER) as span:
                span.set_attribute("tunegate.event_id", envelope.event_id)
                span.set_attribute("tunegate.subject", envelope.subject)
                signed = sign(envelope.model_copy(update={"trace": current_traceparent()}))
                await publisher.publish(signed)
                published.append(signed)

    try:
        asyncio.run(run())
    finally:
        provider.shutdown()
    return published[0]
