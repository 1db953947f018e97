"""A pipelined batch is one PRODUCER span (OpenTelemetry's messaging conventions for batches): a child of the
first event's context, linked to every other event's, and each message's traceparent header names the batch
span only where that is the message's own trace."""

from __future__ import annotations

import asyncio

import redis

from shared.bus.publisher import Publisher
from shared.bus.wire import split_fields
from shared.events.envelope import Envelope
from tests.support import capture_spans, keys, sign

TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"


def state_changed(job_id: str, trace: str) -> Envelope:
    return Envelope(type="job.state_changed", producer="registry", actor="tester", subject=job_id, trace=trace,
                    payload={"job_id": job_id, "from_state": None, "to_state": "requested", "reason": ""})


def test_a_batch_is_one_producer_span_linked_to_every_trace(tunegate_home: object, redis_url: str) -> None:
    spans = capture_spans()
    envelopes = [sign(e) for e in (
        state_changed("job_batch_a1", f"00-{TRACE_A}-00f067aa0ba902b7-01"),
        state_changed("job_batch_b1", f"00-{TRACE_B}-b7ad6b7169203331-01"),
        state_changed("job_batch_a2", f"00-{TRACE_A}-53995c3f42cd8ad8-01"),
    )]

    async def run() -> None:
        async with Publisher(redis_url, keys().signer("registry")) as publisher:
            await publisher.publish_many(envelopes)

    asyncio.run(run())

    producers = [s for s in spans.get_finished_spans() if s.kind.name == "PRODUCER"]
    assert len(producers) == 1, [s.name for s in producers]
    batch = producers[0]
    assert batch.name == "send tunegate.jobs"
    assert batch.attributes["messaging.batch.message_count"] == 3
    assert batch.attributes["messaging.destination.name"] == "tunegate.jobs"
    assert format(batch.context.trace_id, "032x") == TRACE_A
    assert format(batch.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert [(format(link.context.trace_id, "032x"), format(link.context.span_id, "016x")) for link in batch.links] == [
        (TRACE_B, "b7ad6b7169203331"), (TRACE_A, "53995c3f42cd8ad8")]  # every other event's own context

    entries = redis.Redis.from_url(redis_url).xrange("tunegate.jobs")
    headers = {Envelope.from_wire(body).subject: found["traceparent"]
               for body, found in (split_fields(fields) for _id, fields in entries)}
    ours = f"00-{TRACE_A}-{format(batch.context.span_id, '016x')}-01"
    assert headers == {"job_batch_a1": ours, "job_batch_a2": ours, "job_batch_b1": envelopes[1].trace}
