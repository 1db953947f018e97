"""The delivery contract over a real Redis and real service processes (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from shared.events.envelope import Envelope
from shared.stack.redis_server import EmbeddedRedis
from tests.support import REPO_ROOT, ServiceProcess, publish_signed, read_dlq, read_stream, service_rows, wait_for

PROBE = str(REPO_ROOT / "tests" / "bus" / "probe_service.py")
pytestmark = pytest.mark.integration


def state_changed(job_id: str, reason: str = "") -> Envelope:
    return Envelope(
        type="job.state_changed",
        producer="registry",
        actor="tester",
        subject=job_id,
        payload={"job_id": job_id, "from_state": None, "to_state": "requested", "reason": reason},
    )


def publish(url: str, *envelopes: Envelope) -> None:
    publish_signed(url, *envelopes)


def effects(home: Path) -> list[tuple[str, str, int]]:
    return service_rows(home, "probe", "SELECT event_id, job_id, pid FROM probe_effects", before_tables=True)


def accepted_for(client: redis.Redis, causation_id: str) -> list[Envelope]:
    return [
        e for e in read_stream(client, "tunegate.jobs") if e.type == "job.accepted" and e.causation_id == causation_id
    ]


def test_events_published_before_the_service_started_are_delivered(tunegate_home: Path, redis_url: str) -> None:
    early = state_changed("job_early")
    publish(redis_url, early)  # no group exists yet: it must be created at 0, not at $
    probe = ServiceProcess(PROBE, tunegate_home, redis_url, service="probe")
    try:
        probe.wait_ready()
        wait_for(lambda: effects(tunegate_home), 20, "early event handled")
        assert [e[0] for e in effects(tunegate_home)] == [early.event_id]
    finally:
        probe.stop()


def test_sigkill_mid_handler_is_reclaimed_and_handled_once(tunegate_home: Path, redis_url: str) -> None:
    first = ServiceProcess(PROBE, tunegate_home, redis_url, service="probe")
    first.wait_ready()
    slow = state_changed("job_slow", "slow:2")
    publish(redis_url, slow)
    marker = tunegate_home / "probe" / f"started-{slow.event_id}-{first.pid}"
    wait_for(marker.exists, 20, "first consumer to start the handler")
    first.kill()  # mid-handler: the entry stays pending on a dead consumer
    second = ServiceProcess(PROBE, tunegate_home, redis_url, service="probe")
    try:
        second.wait_ready()
        wait_for(lambda: effects(tunegate_home), 30, "reclaimed entry handled")
        rows = effects(tunegate_home)
        assert len(rows) == 1 and rows[0][0] == slow.event_id and rows[0][2] == second.pid
        client = redis.Redis.from_url(redis_url)
        wait_for(lambda: client.xpending("tunegate.jobs", "tunegate-probe")["pending"] == 0, 10, "ack")
        assert len(accepted_for(client, slow.event_id)) == 1
    finally:
        second.stop()


def test_poison_message_goes_to_dlq_after_max_deliveries(tunegate_home: Path, redis_url: str) -> None:
    probe = ServiceProcess(PROBE, tunegate_home, redis_url, service="probe")
    try:
        probe.wait_ready()
        poison = state_changed("job_poison", "poison")
        good = state_changed("job_good")
        publish(redis_url, poison, good)
        client = redis.Redis.from_url(redis_url)
        dead = wait_for(lambda: read_dlq(client, "tunegate.jobs"), 30, "dead letter")
        assert len(dead) == 1
        assert dead[0]["group"] == "tunegate-probe"
        assert "poison pill in job job_poison" in dead[0]["reason"]
        assert int(dead[0]["deliveries"]) == 3  # TUNEGATE_MAX_DELIVERIES in the test env
        assert Envelope.from_wire(dead[0]["body"].encode()).event_id == poison.event_id
        assert [r[1] for r in effects(tunegate_home)] == ["job_good"]  # the queue kept moving
        wait_for(lambda: client.xpending("tunegate.jobs", "tunegate-probe")["pending"] == 0, 10, "ack")
        [record] = [e for e in read_stream(client, "tunegate.bus") if e.type == "bus.event.dead_lettered"]
        assert record.data.claimed_type == "job.state_changed" and record.data.deliveries == 3  # type: ignore[attr-defined]
        assert "poison pill" in record.data.reason  # type: ignore[attr-defined]
    finally:
        probe.stop()


def test_an_outage_uses_up_no_deliveries(tunegate_home: Path, redis_url: str) -> None:
    """A handler failing because its database is unreachable, on more deliveries than the limit allows (3 in
    the test env), is retried until the database answers: the job's next step is not dead-lettered."""
    probe = ServiceProcess(PROBE, tunegate_home, redis_url, service="probe")
    try:
        probe.wait_ready()
        event = state_changed("job_outage", "outage:5")
        publish(redis_url, event)
        client = redis.Redis.from_url(redis_url)
        wait_for(lambda: effects(tunegate_home), 60, "the handler to succeed after the outage")
        assert [r[1] for r in effects(tunegate_home)] == ["job_outage"]
        assert (tunegate_home / "probe" / f"attempts-{event.event_id}").read_text() == "x" * 6
        assert read_dlq(client, "tunegate.jobs") == []
        wait_for(lambda: client.xpending("tunegate.jobs", "tunegate-probe")["pending"] == 0, 10, "ack")
        assert "database or Redis unreachable, retried later" in probe.log()
        assert "Traceback" not in probe.log()
    finally:
        probe.stop()


def test_a_statement_the_database_refuses_is_the_events_failure(tunegate_home: Path, redis_url: str) -> None:
    """SQLite's "no such table" is an OperationalError like an outage, but no wait will fix it: it uses up the
    event's deliveries and is dead-lettered, instead of being retried for good."""
    probe = ServiceProcess(PROBE, tunegate_home, redis_url, service="probe")
    try:
        probe.wait_ready()
        publish(redis_url, state_changed("job_bug", "missing-table"))
        client = redis.Redis.from_url(redis_url)
        dead = wait_for(lambda: read_dlq(client, "tunegate.jobs"), 30, "dead letter")
        reason = dead[0]["reason"]
        assert int(dead[0]["deliveries"]) == 3
        assert "no such table: no_such_table" in reason or 'relation "no_such_table" does not exist' in reason
        assert effects(tunegate_home) == []
        assert "database or Redis unreachable" not in probe.log()
    finally:
        probe.stop()


def test_invalid_envelopes_go_straight_to_dlq_with_the_reason(tunegate_home: Path, redis_url: str) -> None:
    probe = ServiceProcess(PROBE, tunegate_home, redis_url, service="probe")
    try:
        probe.wait_ready()
        client = redis.Redis.from_url(redis_url)
        client.xadd("tunegate.jobs", {"envelope": b"{not json"})
        bad_payload = state_changed("job_x").model_dump(mode="json")
        bad_payload["payload"] = {"job_id": 7}
        import json

        client.xadd("tunegate.jobs", {"envelope": json.dumps(bad_payload)})
        unknown = dict(bad_payload, type="job.teleported")
        client.xadd("tunegate.jobs", {"envelope": json.dumps(unknown)})
        client.xadd("tunegate.jobs", {"envelope": b"[" * 20_000 + b"]" * 20_000})  # RecursionError in json.loads
        dead = wait_for(
            lambda: len(read_dlq(client, "tunegate.jobs")) >= 4 and read_dlq(client, "tunegate.jobs"), 20, "dlq"
        )
        reasons = [d["reason"] for d in dead]
        assert "body is not JSON" in reasons[0]
        assert "payload.job_id" in reasons[1] and "to_state" in reasons[1]
        assert "unknown event type 'job.teleported'" in reasons[2]
        assert "body is not JSON" in reasons[3] and "nested more than about" in reasons[3]
        assert [d["deliveries"] for d in dead] == ["1", "1", "1", "1"]
        assert effects(tunegate_home) == []
        assert "RecursionError" not in probe.log()
    finally:
        probe.stop()


def test_an_entry_that_is_not_utf8_holds_up_nothing_read_with_it(tunegate_home: Path, redis_url: str) -> None:
    """FastStream's batch parser re-encoded every entry as JSON and raised on bytes that are not UTF-8, before
    the runtime saw the batch: every event read with such an entry waited, unlogged, for the reclaimer (30 s
    by default; a minute here, so the old behaviour times out), one delivery poorer."""
    client = redis.Redis.from_url(redis_url)
    good = state_changed("job_neighbour")
    with client.pipeline(transaction=True) as pipe:
        pipe.xadd("tunegate.jobs", {"envelope": b'{"type": "\xff\xfe"}'})
        pipe.xadd("tunegate.jobs", {"type": b"\xff\xfe"})
        pipe.xadd("tunegate.jobs", {"__data__": b'{"data": 7, "headers": [1]}'})
        pipe.execute()
    publish(redis_url, good)  # before the service starts: its first read takes all four as one batch
    probe = ServiceProcess(PROBE, tunegate_home, redis_url, service="probe",
                           extra_env={"TUNEGATE_RECLAIM_IDLE_MS": "60000"})
    try:
        probe.wait_ready()
        wait_for(lambda: effects(tunegate_home), 20, "the good event handled")
        assert [e[0] for e in effects(tunegate_home)] == [good.event_id]
        dead = wait_for(lambda: len(read_dlq(client, "tunegate.jobs")) >= 3 and read_dlq(client, "tunegate.jobs"),
                        20, "the three entries dead-lettered")
        assert [d["deliveries"] for d in dead] == ["1", "1", "1"]
        assert all("not JSON" in d["reason"] or "envelope" in d["reason"] for d in dead), dead
    finally:
        probe.stop()


def test_duplicate_delivery_has_one_effect(tunegate_home: Path, redis_url: str) -> None:
    probe = ServiceProcess(PROBE, tunegate_home, redis_url, service="probe")
    try:
        probe.wait_ready()
        event = state_changed("job_dup")
        publish(redis_url, event, event)
        client = redis.Redis.from_url(redis_url)
        wait_for(
            lambda: (
                client.xpending("tunegate.jobs", "tunegate-probe")["pending"] == 0 and len(effects(tunegate_home)) >= 1
            ),
            20,
            "both copies handled",
        )
        publish(redis_url, event)  # and once more, later
        wait_for(lambda: client.xinfo_groups("tunegate.jobs")[0]["lag"] == 0, 20, "third copy read")
        wait_for(lambda: client.xpending("tunegate.jobs", "tunegate-probe")["pending"] == 0, 20, "acked")
        assert len(effects(tunegate_home)) == 1
        assert len(accepted_for(client, event.event_id)) == 1
    finally:
        probe.stop()


def test_redis_restart_with_aof_loses_nothing(tunegate_home: Path, redis_server: EmbeddedRedis) -> None:
    url = redis_server.url
    probe = ServiceProcess(PROBE, tunegate_home, url, service="probe")
    try:
        probe.wait_ready()
        before = [state_changed(f"job_b{i}") for i in range(30)]
        publish(url, *before)
        wait_for(lambda: len(effects(tunegate_home)) >= 10, 20, "some handled")
        redis_server.kill()  # crash mid-run
        # appendfsync everysec: the publisher's entries were fsynced long before this point
        redis_server.start()
        after = [state_changed(f"job_a{i}") for i in range(30)]
        publish(url, *after)
        wanted = {e.event_id for e in before + after}
        wait_for(lambda: {r[0] for r in effects(tunegate_home)} >= wanted, 60, "all 60 handled after restart")
        rows = effects(tunegate_home)
        assert len(rows) == 60, "each event handled exactly once"
        assert "NOGROUP" not in probe.log() or "re-created" in probe.log()
    finally:
        probe.stop()


def test_lost_consumer_group_is_recreated(tunegate_home: Path, redis_url: str) -> None:
    probe = ServiceProcess(PROBE, tunegate_home, redis_url, service="probe")
    try:
        probe.wait_ready()
        publish(redis_url, state_changed("job_1"))
        wait_for(lambda: len(effects(tunegate_home)) == 1, 20, "first")
        client = redis.Redis.from_url(redis_url)
        client.flushall()  # Redis restarted without persistence: streams and groups are gone
        wait_for(lambda: any(g["name"] == b"tunegate-probe" for g in _groups(client)), 20, "group re-created")
        publish(redis_url, state_changed("job_2"))
        wait_for(lambda: len(effects(tunegate_home)) == 2, 30, "handled after group loss")
    finally:
        probe.stop()


def _groups(client: redis.Redis) -> list[dict]:
    try:
        return client.xinfo_groups("tunegate.jobs")
    except redis.ResponseError:
        return []


def test_trace_context_flows_through_a_handler(tunegate_home: Path, redis_url: str) -> None:
    probe = ServiceProcess(PROBE, tunegate_home, redis_url, service="probe")
    try:
        probe.wait_ready()
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        event = state_changed("job_traced").model_copy(update={"trace": f"00-{trace_id}-00f067aa0ba902b7-01"})
        publish(redis_url, event)
        client = redis.Redis.from_url(redis_url)
        emitted = wait_for(lambda: accepted_for(client, event.event_id), 20, "emitted event")
        assert emitted[0].trace_id == trace_id, "what a handler emits continues the trace it consumed"
        assert emitted[0].trace != event.trace, "...as a child span, not a copy"
    finally:
        probe.stop()  # flushes the span processor
    spans = [json.loads(line) for line in (tunegate_home / "traces" / "probe.jsonl").read_text().splitlines()]
    # The probe also reads back what it emitted (same stream, same trace): pick the span of *this* event, not
    # whichever span was written first (under load the two can finish in either order).
    handler_spans = [s for s in spans if s["name"] == "process tunegate.jobs" and s["trace_id"] == trace_id
                     and s["attributes"].get("messaging.message.id") == event.event_id]
    assert handler_spans and handler_spans[0]["parent_span_id"] == "00f067aa0ba902b7"
    consumer = handler_spans[0]
    assert consumer["kind"] == "CONSUMER"
    assert consumer["attributes"] | {
        "messaging.system": "redis",
        "messaging.destination.name": "tunegate.jobs",
        "messaging.operation.type": "process",
        "messaging.consumer.group.name": "tunegate-probe",
        "messaging.message.id": event.event_id,
    } == consumer["attributes"]
    senders = [s for s in spans if s["name"] == "send tunegate.jobs" and s["trace_id"] == trace_id]
    assert senders and senders[0]["kind"] == "PRODUCER" and senders[0]["parent_span_id"] == consumer["span_id"]
    assert {s["trace_id"] for s in spans} == {trace_id}, "no stray per-message traces"


def test_a_live_consumer_keeps_its_long_running_entries(tunegate_home: Path, redis_url: str) -> None:
    probe = ServiceProcess(PROBE, tunegate_home, redis_url, service="probe")
    try:
        probe.wait_ready()
        sleepy = state_changed("job_sleepy", "sleepy:4")  # 4x the reclaim idle time of the test env
        publish(redis_url, sleepy)
        wait_for(lambda: effects(tunegate_home), 30, "long handler finished")
        starts = list((tunegate_home / "probe").glob(f"started-{sleepy.event_id}-*"))
        assert len(starts) == 1, "the reclaimer must not re-deliver an entry its live owner is handling"
        assert len(effects(tunegate_home)) == 1
    finally:
        probe.stop()
