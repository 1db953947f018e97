"""The embedded Redis of `tunegate up`: users with least privilege, secrets 0600, recovery on the same
address after a crash, and a status that tells when a service is gone or cannot reach Redis."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest
import redis

from shared.config import Settings
from shared.stack.redis_acl import ADMIN, OPERATOR, RedisCredentials
from shared.stack.supervisor import Supervisor, SupervisorError
from tests.support import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def supervisor(tunegate_home: Path, monkeypatch: pytest.MonkeyPatch) -> Supervisor:
    monkeypatch.delenv("TUNEGATE_REDIS_URL", raising=False)
    sup = Supervisor(Settings())
    yield sup
    sup.down()


def test_redis_users_are_least_privilege_and_their_secrets_0600(supervisor: Supervisor, tunegate_home: Path) -> None:
    supervisor.up(("audit",))
    settings = Settings()
    base = (tunegate_home / "redis" / "url").read_text().strip()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(base).ping()  # the default user is off
    credentials = RedisCredentials(tunegate_home / "redis")
    for path in [*credentials.directory.iterdir(), credentials.acl_file]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert credentials.password(ADMIN) not in credentials.acl_file.read_text(), "the ACL file keeps hashes only"

    scanner = redis.Redis.from_url(settings.resolved_redis_url("scanner"))
    scanner.xadd("tunegate.datasets", {"probe": "1"})  # what it emits
    with pytest.raises(redis.exceptions.NoPermissionError):
        scanner.xadd("tunegate.training", {"forged": "training.requested"})  # not its stream
    with pytest.raises(redis.exceptions.NoPermissionError):
        scanner.delete("tunegate.jobs.dlq")  # no one but the administrator deletes
    with pytest.raises(redis.exceptions.NoPermissionError):
        scanner.flushall()
    operator = redis.Redis.from_url(settings.resolved_redis_url(OPERATOR))
    operator.xadd("tunegate.jobs", {"probe": "1"})
    with pytest.raises(redis.exceptions.NoPermissionError):
        operator.xadd("tunegate.training", {"forged": "1"})
    with pytest.raises(redis.exceptions.NoPermissionError):
        operator.xtrim("tunegate.jobs.dlq", maxlen=0)
    report = supervisor.status()
    assert report["healthy"], report
    assert credentials.password(ADMIN) not in str(report)


def test_transactions_survive_a_redis_restart_with_users(supervisor: Supervisor, tunegate_home: Path) -> None:
    """Redis replays its AOF as the default user and re-checks every MULTI/EXEC against it: with the default
    user stripped of permissions each transaction (a dead-letter move, an ack) was dropped on restart."""
    supervisor.start_redis()
    admin = redis.Redis.from_url(supervisor.redis_url())
    with admin.pipeline(transaction=True) as pipe:  # as the bus moves an entry to its dead letters
        pipe.xadd("tunegate.jobs.dlq", {"entry_id": "1-0"})
        pipe.hset("tunegate:errors:tunegate-registry", "tunegate.jobs|1-0", "gone")
        pipe.execute()
    admin.xadd("tunegate.jobs", {"plain": "1"})
    admin.close()
    redis_record = supervisor.records()["redis"]
    os.kill(redis_record.pid, signal.SIGTERM)  # a clean restart: Redis fsyncs its AOF before it exits
    wait_for(lambda: not redis_record.alive(), 20, "redis stopped")
    supervisor.start_redis()
    admin = redis.Redis.from_url(supervisor.redis_url())
    assert admin.xlen("tunegate.jobs") == 1
    assert admin.xlen("tunegate.jobs.dlq") == 1, "the transaction was replayed from the AOF"
    assert admin.hget("tunegate:errors:tunegate-registry", "tunegate.jobs|1-0") == b"gone"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url((tunegate_home / "redis" / "url").read_text().strip()).ping()  # default: no login
    admin.close()


def test_after_a_redis_crash_up_restores_the_same_address_and_services_reconnect(supervisor: Supervisor) -> None:
    supervisor.up(("audit",))
    url_before = supervisor.redis_url()
    redis_record = supervisor.records()["redis"]
    os.kill(redis_record.pid, signal.SIGKILL)
    wait_for(lambda: not redis_record.alive(), 10, "redis gone")
    report = supervisor.status()
    assert not report["healthy"] and not report["redis"]["reachable"]

    supervisor.up(("audit",))
    assert supervisor.redis_url() == url_before
    audit_pid = supervisor.records()["audit"].pid
    # The audit process was never restarted; it reconnects by itself and its heartbeat comes back.
    wait_for(lambda: supervisor.status()["healthy"], 40, "audit heartbeat after reconnect")
    assert supervisor.records()["audit"].pid == audit_pid


def test_status_reports_a_killed_service_as_unhealthy(supervisor: Supervisor) -> None:
    supervisor.up(("audit",))
    record = supervisor.records()["audit"]
    os.kill(record.pid, signal.SIGKILL)
    wait_for(lambda: not record.alive(), 10, "audit gone")
    report = supervisor.status()
    entry = report["services"]["audit"]
    assert not report["healthy"] and not entry["alive"] and not entry["ready"]
    assert "is gone" in entry["problems"][0]


def test_each_service_can_do_its_own_work_under_its_user(tmp_path: Path) -> None:
    """What the trainer does with leases, fencing tokens and cancel flags is allowed to its user (a denied
    command would fail every training job, only under `tunegate up`, never in tests without users)."""
    from shared.stack.lease import LeaseManager
    from shared.stack.redis_server import EmbeddedRedis

    credentials = RedisCredentials(tmp_path / "redis")
    server = EmbeddedRedis(
        tmp_path / "redis", acl_file=credentials.ensure(), admin_password=credentials.password(ADMIN)
    )
    server.start()
    try:
        trainer = redis.Redis.from_url(credentials.url_for(server.url, "trainer"))
        leases = LeaseManager(trainer, "worker-a", ttl_ms=2000)
        lease = leases.try_acquire("job_1")
        assert lease is not None and lease.token == 1
        assert lease.renew()
        lease.verify()
        leases.request_cancel("job_1", "stop")
        assert leases.cancel_reason("job_1") == "stop"
        lease.release()
        assert LeaseManager(trainer, "worker-b", ttl_ms=2000).try_acquire("job_1") is not None
        operator = redis.Redis.from_url(credentials.url_for(server.url, OPERATOR))
        assert operator.get("tunegate:training:job_1:cancel") == b"stop"  # `jobs watch` reads it
    finally:
        server.stop()


def test_up_with_replicas_starts_reports_and_stops_each_process(supervisor: Supervisor, tunegate_home: Path) -> None:
    result = supervisor.up(("audit",), replicas=2)
    pids = result["services"]["audit"]
    assert len(set(pids)) == 2
    assert set(supervisor.records()) == {"redis", "audit", "audit-2"}
    wait_for(lambda: len(supervisor.status()["services"]["audit"]["replicas"]) == 2, 20, "two heartbeats")
    entry = supervisor.status()["services"]["audit"]
    assert entry["pids"] == pids and entry["alive"] and entry["ready"] and not entry["problems"]
    assert supervisor.up(("audit",), replicas=2)["services"]["audit"] == pids  # idempotent: none started twice
    os.kill(pids[1], signal.SIGKILL)
    wait_for(lambda: not supervisor.records()["audit-2"].alive(), 10, "the second replica gone")
    report = supervisor.status()
    entry = report["services"]["audit"]
    assert not report["healthy"] and not entry["alive"]
    assert entry["problems"] == [f"process {pids[1]} is gone (log: {supervisor.records()['audit-2'].log})"]
    with pytest.raises(SupervisorError, match=r"replicas must be 1\.\.16"):
        supervisor.up(("audit",), replicas=17)
    assert set(supervisor.down()) == {"audit", "redis"}  # the SIGKILLed one was not running to be stopped
    assert not list((tunegate_home / "run").glob("*.pid.json"))
