"""One worker per job at a time: a Redis lease (SET NX PX, renewed while working) plus a fencing token
(INCR) so a worker that stalled past its lease cannot record a result after a newer holder took over.
The trainer leases `training` work, the evaluator `evaluation` work; each namespace has its own keys."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import redis

T = TypeVar("T")

CANCEL_TTL_S = 7 * 24 * 3600

# Renew or release only if we still own the lease: a plain PEXPIRE/DEL could extend or drop someone else's.
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


TRAINING = "training"


class LeaseLost(RuntimeError):
    """Another worker holds this job now (lease expired or a newer fencing token exists): stop, publish nothing."""


def lease_key(job_id: str, namespace: str = TRAINING) -> str:
    return f"tunegate:{namespace}:{job_id}:lease"


def fence_key(job_id: str, namespace: str = TRAINING) -> str:
    return f"tunegate:{namespace}:{job_id}:fence"


def cancel_key(job_id: str, namespace: str = TRAINING) -> str:
    return f"tunegate:{namespace}:{job_id}:cancel"


@dataclass
class Lease:
    client: redis.Redis
    job_id: str
    worker_id: str
    token: int
    ttl_ms: int
    namespace: str = TRAINING

    def renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, lease_key(self.job_id, self.namespace), self.worker_id, self.ttl_ms))

    def verify(self) -> None:
        """Raise LeaseLost unless we hold the lease and our token is the newest."""
        holder = self.client.get(lease_key(self.job_id, self.namespace))
        latest = int(self.client.get(fence_key(self.job_id, self.namespace)) or 0)
        holder_id = holder.decode() if isinstance(holder, bytes) else holder
        if holder_id != self.worker_id or latest != self.token:
            raise LeaseLost(f"job {self.job_id}: lease now held by {holder_id!r} with token {latest}, "
                            f"this worker ({self.worker_id}) has token {self.token}")

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, lease_key(self.job_id, self.namespace), self.worker_id)


class LeaseManager:
    def __init__(self, client: redis.Redis, worker_id: str, ttl_ms: int = 30_000, namespace: str = TRAINING) -> None:
        self.client = client
        self.worker_id = worker_id
        self.ttl_ms = ttl_ms
        self.namespace = namespace

    def try_acquire(self, job_id: str) -> Lease | None:
        if not self.client.set(lease_key(job_id, self.namespace), self.worker_id, nx=True, px=self.ttl_ms):
            return None
        token = int(self.client.incr(fence_key(job_id, self.namespace)))
        return Lease(self.client, job_id, self.worker_id, token, self.ttl_ms, self.namespace)

    def request_cancel(self, job_id: str, reason: str) -> None:
        self.client.set(cancel_key(job_id, self.namespace), reason or "cancelled", ex=CANCEL_TTL_S)

    def cancel_reason(self, job_id: str) -> str | None:
        value = self.client.get(cancel_key(job_id, self.namespace))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)


async def hold_while(work: Awaitable[T], lease: Lease, *, still_mine: Callable[[], Awaitable[None]],
                     lost: threading.Event, heartbeat_s: float, poll_s: float | None = None,
                     on_poll: Callable[[], Awaitable[None]] | None = None) -> T:
    """Await thread work while keeping the stream entry (`still_mine`) and the lease alive. A failed renewal
    sets `lost`; the work checks it at its next step and stops. `on_poll` runs every `poll_s` (the trainer
    watches for cancel requests there)."""
    task = asyncio.ensure_future(work)
    next_beat = time.monotonic() + heartbeat_s
    while True:
        done, _ = await asyncio.wait({task}, timeout=min(poll_s or heartbeat_s, heartbeat_s))
        if done:
            return task.result()
        if on_poll is not None:
            await on_poll()
        if time.monotonic() >= next_beat:
            next_beat = time.monotonic() + heartbeat_s
            await still_mine()
            if not await asyncio.to_thread(lease.renew):
                lost.set()


def check_heartbeat(setting: str, heartbeat_s: float, ttl_ms: int) -> None:
    """Renewals must come well within the TTL, or a healthy worker's lease could lapse between them."""
    if heartbeat_s * 1000 >= ttl_ms / 2:
        raise ValueError(f"{setting}={heartbeat_s} must be under half the lease TTL ({ttl_ms} ms), or a healthy "
                         "worker's lease could lapse between renewals")


def worker_identity() -> str:
    """host:pid:random, unique per worker process (the holder name of its leases)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


async def acquire_within(leases: LeaseManager, key: str, wait_s: float,
                         still_mine: Callable[[], Awaitable[None]]) -> Lease | None:
    """Wait about one lease TTL for `key`: a crashed holder's lease expires by then, a live holder's is
    renewed, so None means another worker really is working on it. The stream entry is kept alive meanwhile."""
    deadline = time.monotonic() + wait_s
    while True:
        lease = await asyncio.to_thread(leases.try_acquire, key)
        if lease is not None or time.monotonic() >= deadline:
            return lease
        await still_mine()
        await asyncio.sleep(0.5)
