"""The one way onto the bus: sign the envelope as its producer, open a PRODUCER span, XADD it.

Services (from their outbox) and the CLI (a principal's `job.requested`) both publish through here. An
envelope is validated when it is built (Envelope's own validators) and is not validated or re-parsed
again on its way out; the trace context goes both in the envelope (signed, it survives any transport)
and in the message headers, where FastStream and other tools look for it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from shared.events.envelope import Envelope
from shared.security.signing import EnvelopeSigner
from shared.telemetry import context_from_traceparent, current_traceparent, messaging_attributes

if TYPE_CHECKING:
    from faststream.redis import RedisBroker

    from shared.config import Settings

TRACEPARENT_HEADER = "traceparent"
EVENT_TYPE_HEADER = "event_type"


class Publisher:
    """Publishes envelopes signed by one identity over one FastStream broker connection.

    `async with Publisher(url, signer) as p` connects and disconnects; a service runtime passes its own
    connected broker instead."""

    def __init__(self, redis_url: str, signer: EnvelopeSigner, broker: RedisBroker | None = None) -> None:
        from faststream.redis import RedisBroker

        self.signer = signer
        self._owns_broker = broker is None
        self.broker = broker or RedisBroker(redis_url, logger=None)

    async def __aenter__(self) -> Publisher:
        await self.broker.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._owns_broker:
            await self.broker.stop()

    def _prepare(self, envelope: Envelope) -> Envelope:
        return envelope if envelope.signature is not None else self.signer.sign(envelope)

    def _span(self, envelope: Envelope, *, current: bool) -> Any:
        tracer = trace.get_tracer("tunegate.bus")
        start = tracer.start_as_current_span if current else tracer.start_span
        return start(
            f"send {envelope.stream}",
            context=context_from_traceparent(envelope.trace),
            kind=SpanKind.PRODUCER,
            attributes=messaging_attributes(envelope, operation="send"),
        )

    async def publish(self, envelope: Envelope) -> Any:
        signed = self._prepare(envelope)
        with self._span(signed, current=True):
            return await self.broker.publish(
                signed.to_wire(),
                stream=signed.stream,
                correlation_id=signed.event_id,
                headers=self._headers(signed),
            )

    async def publish_many(self, envelopes: Sequence[Envelope]) -> None:
        """Pipelined publish: one round trip for many events (an outbox batch, bulk replays), each with its
        PRODUCER span, ended when the batch is on the stream."""
        signed = [self._prepare(e) for e in envelopes]
        spans = [self._span(envelope, current=False) for envelope in signed]
        try:
            async with self.broker._connection.pipeline(transaction=False) as pipe:  # type: ignore[union-attr]
                for envelope, span in zip(signed, spans, strict=True):
                    with trace.use_span(span, end_on_exit=False):
                        await self.broker.publish(
                            envelope.to_wire(),
                            stream=envelope.stream,
                            correlation_id=envelope.event_id,
                            headers=self._headers(envelope),
                            pipeline=pipe,
                        )
                await pipe.execute()
        finally:
            for span in spans:
                span.end()

    @staticmethod
    def _headers(envelope: Envelope) -> dict[str, str]:
        headers = {EVENT_TYPE_HEADER: envelope.type}
        traceparent = current_traceparent() or envelope.trace
        if traceparent:
            headers[TRACEPARENT_HEADER] = traceparent
        return headers


def publish(settings: Settings, envelopes: Sequence[Envelope], signer: EnvelopeSigner) -> list[Envelope]:
    """Synchronous publish for CLI commands, as the operator's Redis user; returns what was published. An
    envelope without a trace starts one here (before it is signed: the signature covers the trace), so a
    job submitted from the CLI is one trace from this span to its last event."""
    from shared.telemetry import setup_tracing

    redis_url = settings.resolved_redis_url("operator")  # fails before anything is set up without a bus
    provider = setup_tracing("cli", settings)
    tracer = trace.get_tracer("tunegate.cli")
    published: list[Envelope] = []

    async def _run() -> None:
        async with Publisher(redis_url, signer) as publisher:
            for envelope in envelopes:
                with tracer.start_as_current_span(f"submit {envelope.type}", kind=SpanKind.CLIENT):
                    if envelope.trace is None:
                        envelope = envelope.model_copy(update={"trace": current_traceparent()})
                    signed = signer.sign(envelope)
                    await publisher.publish(signed)
                    published.append(signed)

    try:
        asyncio.run(_run())
    finally:
        provider.shutdown()
    return published
