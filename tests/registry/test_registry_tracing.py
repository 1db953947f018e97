"""An approval is a request of its own (a SERVER span, its own trace) linked to the job's trace, and the
events it causes continue the job's trace."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind

from tests.registry.registry_support import World, job_requested, make_spec
from tests.support import capture_spans

pytestmark = pytest.mark.anyio


async def test_an_approval_request_links_to_the_jobs_trace(world: World) -> None:
    spans = capture_spans()
    bob = world.principal("bob", "approver")
    job_trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    world.principal("alice", "requester")
    submitted = job_requested("job_1", make_spec()).model_copy(update={"trace": job_trace})
    await world.runtime.deliver(world.handlers, world.signed(submitted))
    await world.scanned(verdict="redacted")
    spans.clear()
    assert world.decide("job_1", bob, decision="approve").status_code == 200

    finished = spans.get_finished_spans()
    servers = [s for s in finished if s.kind == SpanKind.SERVER]
    assert [s.name for s in servers] == ["POST /jobs/{job_id}/approvals"], "FastAPI's own SERVER span"
    [request] = servers
    job_trace_id = int(job_trace.split("-")[1], 16)
    assert request.context.trace_id != job_trace_id, "the request is a trace of its own"
    in_request = [s for s in finished if s.context.trace_id == request.context.trace_id]
    links = [link.context.trace_id for s in in_request for link in s.links]
    assert links == [job_trace_id], "linked to the job's trace"
    granted = world.runtime.of_type("approval.granted")[-1]
    assert granted.trace_id == job_trace.split("-")[1], "the decision continues the job's trace"
