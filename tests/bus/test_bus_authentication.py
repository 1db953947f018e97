"""Every entry is authenticated before a handler sees it: signature by a key of its producer, and a
producer that may emit its type (shared/roster.py). Refusals are dead-lettered and recorded on the bus."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.events.envelope import Envelope
from shared.security.signing import EnvelopeSigner
from tests.support import (
    REPO_ROOT,
    ServiceProcess,
    publish_signed,
    read_dlq,
    read_stream,
    service_rows,
    sign,
    wait_for,
)

PROBE = str(REPO_ROOT / "tests" / "bus" / "probe_service.py")
pytestmark = pytest.mark.integration


def state_changed(job_id: str, producer: str = "registry") -> Envelope:
    return Envelope(
        type="job.state_changed",
        producer=producer,
        actor="tester",
        subject=job_id,
        payload={"job_id": job_id, "from_state": None, "to_state": "requested", "reason": ""},
    )


def effects(home: Path) -> list[str]:
    return [job_id for (job_id,) in service_rows(home, "probe", "SELECT job_id FROM probe_effects", before_tables=True)]


def test_forged_unsigned_and_unauthorised_entries_are_refused_and_recorded(tunegate_home: Path, redis_url: str) -> None:
    probe = ServiceProcess(PROBE, tunegate_home, redis_url, service="probe")
    try:
        probe.wait_ready()
        client = redis.Redis.from_url(redis_url)
        # 1. a plain XADD without a signature
        unsigned = state_changed("job_unsigned")
        client.xadd("tunegate.jobs", {"envelope": unsigned.to_wire()})
        # 2. signed by a key that is not the registry's (anyone can make a key pair)
        forged = EnvelopeSigner("registry", Ed25519PrivateKey.generate()).sign(state_changed("job_forged"))
        client.xadd("tunegate.jobs", {"envelope": forged.to_wire()})
        # 3. validly signed by the scanner, which may not emit job.state_changed
        wrong_producer = sign(state_changed("job_scanner", producer="scanner"))
        client.xadd("tunegate.jobs", {"envelope": wrong_producer.to_wire()})
        # 4. a genuine registry event whose payload was changed after signing
        genuine = sign(state_changed("job_genuine"))
        tampered = json.loads(genuine.to_wire())
        tampered["payload"]["to_state"] = "approved"
        client.xadd("tunegate.jobs", {"envelope": json.dumps(tampered)})
        # 5. a correctly signed registry event is handled
        good = state_changed("job_good")
        publish_signed(redis_url, good)

        wait_for(lambda: "job_good" in effects(tunegate_home), 20, "the genuine event handled")
        dead = wait_for(
            lambda: len(read_dlq(client, "tunegate.jobs")) >= 4 and read_dlq(client, "tunegate.jobs"), 20, "dlq"
        )
        reasons = [d["reason"] for d in dead]
        assert "unsigned envelope from 'registry'" in reasons[0]
        assert "is not a known key of 'registry'" in reasons[1]
        assert "producer 'scanner' may not emit job.state_changed (allowed: registry)" in reasons[2]
        assert "does not match the envelope" in reasons[3]
        assert effects(tunegate_home) == ["job_good"], "no refused entry reached the handler"

        rejections = wait_for(
            lambda: len(read_stream(client, "tunegate.bus")) >= 4 and read_stream(client, "tunegate.bus"), 20, "records"
        )
        assert [r.type for r in rejections] == ["bus.event.rejected"] * 4
        assert all(r.producer == "probe" and r.signature is not None for r in rejections)
        assert [r.data.claimed_type for r in rejections] == ["job.state_changed"] * 4  # type: ignore[attr-defined]
        forged_hash = hashlib.sha256(forged.to_wire()).hexdigest()
        assert rejections[1].data.raw_sha256 == forged_hash  # type: ignore[attr-defined]
    finally:
        probe.stop()
