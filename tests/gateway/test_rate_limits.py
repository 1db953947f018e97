"""Per-key budgets in a real Redis, run as the gateway's own ACL user (least privilege: its key prefix and
the commands shared/stack/redis_acl.py grants it): parallel bursts never overshoot, settled tokens come
back, retry-after says when the window frees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from services.gateway.adapters.rate_limits import (
    MAX_SETTLED_TOKENS,
    Admission,
    BudgetUnavailable,
    RateLimiter,
    Settlements,
    merged_refunds,
)
from shared.stack.redis_acl import ADMIN, RedisCredentials
from shared.stack.redis_server import EmbeddedRedis

pytestmark = pytest.mark.anyio

KEY = "key_0123456789abcdef"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[tuple[EmbeddedRedis, RedisCredentials]]:
    """An embedded Redis with the roster's users (the default user off), as `tunegate up` runs it."""
    credentials = RedisCredentials(tmp_path / "redis")
    server = EmbeddedRedis(
        tmp_path / "redis", acl_file=credentials.ensure(), admin_password=credentials.password(ADMIN)
    )
    server.start()
    yield server, credentials
    server.stop()


@pytest.fixture
async def gateway_clients(acl_redis: tuple[EmbeddedRedis, RedisCredentials]) -> AsyncIterator[list[aioredis.Redis]]:
    """Four clients (four connection pools, as four gateway replicas would have) logged in as `gateway`."""
    server, credentials = acl_redis
    url = credentials.url_for(server.url, "gateway")
    clients = [aioredis.Redis.from_url(url) for _ in range(4)]
    yield clients
    for client in clients:
        await client.aclose()


@pytest.fixture
def admin(acl_redis: tuple[EmbeddedRedis, RedisCredentials]) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(acl_redis[0].admin_url)
    yield client
    client.close()


async def burst(limiters: list[RateLimiter], count: int, **limits: int) -> list[Admission]:
    calls = [limiters[i % len(limiters)].admit(KEY, **limits) for i in range(count)]  # type: ignore[arg-type]
    return list(await asyncio.gather(*calls))


async def test_a_burst_of_200_admits_exactly_the_requests_per_minute(gateway_clients: list[aioredis.Redis]) -> None:
    limiters = [RateLimiter(client) for client in gateway_clients]
    outcomes = await burst(limiters, 200, rpm=50, tokens_per_day=1_000_000, reserve_tokens=10)
    admitted = [o for o in outcomes if o.admitted]
    refused = [o for o in outcomes if not o.admitted]
    assert len(admitted) == 50
    assert sorted(o.requests_in_window for o in admitted) == list(range(1, 51)), "each saw the one before it"
    assert {o.limit for o in refused} == {"requests_per_minute"}
    assert "50 of 50 requests per minute used; retry in" in refused[0].reason
    assert all(o.retry_after_s is not None and 0 < o.retry_after_s <= 60 for o in refused)
    assert all(o.retry_after_header is not None and 1 <= int(o.retry_after_header) <= 60 for o in refused)
    assert max(o.tokens_used_today for o in outcomes) == 500, "refused requests reserve nothing"


async def test_a_burst_never_overshoots_the_daily_tokens_and_settled_tokens_come_back(
    gateway_clients: list[aioredis.Redis],
) -> None:
    limiters = [RateLimiter(client) for client in gateway_clients]
    outcomes = await burst(limiters, 200, rpm=1_000, tokens_per_day=1_000, reserve_tokens=30)
    admitted = [o for o in outcomes if o.admitted]
    assert len(admitted) == 33
    refused = [o for o in outcomes if not o.admitted]
    assert {o.limit for o in refused} == {"tokens_per_day"}
    assert all(o.retry_after_s is not None and 0 < o.retry_after_s <= 86_400 for o in refused)

    limiter = limiters[0]
    assert await limiter.settle(KEY, admitted[0], used_tokens=10) == 990 - 20, "20 unused tokens returned"
    assert (await limiter.admit(KEY, rpm=1_000, tokens_per_day=1_000, reserve_tokens=30)).admitted
    again = await limiter.admit(KEY, rpm=1_000, tokens_per_day=1_000, reserve_tokens=30)
    assert not again.admitted and again.tokens_used_today == 1_000
    assert "1000 of 1000 tokens for today (UTC)" in again.reason and "needs up to 30" in again.reason
    assert await limiter.settle(KEY, again, used_tokens=0) is None, "a refusal reserved nothing to give back"
    # Counts Lua's doubles cannot hold, or that would give back more than was reserved, are refused outright.
    for impossible in (-1, MAX_SETTLED_TOKENS + 1, 10**308):
        with pytest.raises(ValueError, match="used_tokens must be between 0 and"):
            await limiter.settle(KEY, admitted[1], used_tokens=impossible)
        with pytest.raises(ValueError, match="used_tokens must be between 0 and"):
            await limiter.settle_many([(admitted[1], impossible)])


async def test_a_request_larger_than_the_whole_day_is_refused_for_good(gateway_clients: list[aioredis.Redis]) -> None:
    refused = await RateLimiter(gateway_clients[0]).admit(KEY, rpm=10, tokens_per_day=100, reserve_tokens=101)
    assert (refused.admitted, refused.limit, refused.retry_after, refused.retry_after_header) == (
        False, "request_over_daily_budget", None, None
    )
    assert "needs up to 101 tokens" in refused.reason and "daily budget of 100" in refused.reason


async def test_the_minute_slides_and_retry_after_is_when_the_oldest_ages_out(
    gateway_clients: list[aioredis.Redis], admin: redis.Redis
) -> None:
    limiter = RateLimiter(gateway_clients[0])
    log_key = limiter.request_log_key(KEY)
    seconds, micros = admin.time()
    now_ms = seconds * 1000 + micros // 1000
    # Five requests 59.5 s ago and five 10 s ago: the window is full and frees in about half a second.
    admin.zadd(log_key, {f"old-{i}": now_ms - 59_500 for i in range(5)})
    admin.zadd(log_key, {f"recent-{i}": now_ms - 10_000 for i in range(5)})
    refused = await limiter.admit(KEY, rpm=10, tokens_per_day=1_000, reserve_tokens=1)
    assert not refused.admitted and refused.limit == "requests_per_minute"
    assert refused.retry_after_s is not None and 0 < refused.retry_after_s <= 0.5
    assert refused.retry_after_header == "1"
    # Age the old ones past the minute: they no longer count, the five recent ones still do.
    admin.zadd(log_key, {f"old-{i}": now_ms - 61_000 for i in range(5)})
    outcomes = await burst([limiter], 20, rpm=10, tokens_per_day=1_000, reserve_tokens=1)
    assert sum(o.admitted for o in outcomes) == 5
    waits = {o.retry_after_s for o in outcomes if not o.admitted}
    assert all(w is not None and 49 < w <= 50 for w in waits), waits


async def test_a_settlement_after_the_day_rolled_over_changes_nothing(
    gateway_clients: list[aioredis.Redis], admin: redis.Redis
) -> None:
    limiter = RateLimiter(gateway_clients[0])
    admission = await limiter.admit(KEY, rpm=10, tokens_per_day=100, reserve_tokens=60)
    assert admission.admitted
    admin.hset(limiter.token_budget_key(KEY), mapping={"day": admission.day + 1, "used": 7})
    assert await limiter.settle(KEY, admission, used_tokens=0) is None
    assert admin.hget(limiter.token_budget_key(KEY), "used") == b"7"
    with pytest.raises(ValueError, match="not key_"):
        await limiter.settle("key_ffffffffffffffff", admission, used_tokens=0)


async def test_the_gateway_user_is_confined_to_its_prefix(gateway_clients: list[aioredis.Redis]) -> None:
    outside = RateLimiter(gateway_clients[0], prefix="tunegate:training:")
    with pytest.raises(redis.exceptions.NoPermissionError):
        await outside.admit(KEY, rpm=10, tokens_per_day=100, reserve_tokens=1)


async def test_settlements_queued_together_return_exactly_what_each_request_left_unused(
    gateway_clients: list[aioredis.Redis], admin: redis.Redis,
) -> None:
    """Answered requests queue their settlements and one pipeline sends them: the budget ends where the
    sum of single settlements would leave it, refusals give nothing back, and the sender drains."""
    limiter = RateLimiter(gateway_clients[0])
    outcomes = await burst([limiter], 12, rpm=1_000, tokens_per_day=1_000, reserve_tokens=100)
    admitted = [o for o in outcomes if o.admitted]
    assert len(admitted) == 10
    settlements = Settlements(limiter)
    for i, admission in enumerate(admitted):
        settlements.add(admission, used_tokens=i * 10)  # returns 100, 90, ..., 10 tokens
    for refusal in (o for o in outcomes if not o.admitted):
        settlements.add(refusal, used_tokens=0)
    await settlements.drain()
    used_now = (await limiter.admit(KEY, rpm=1_000, tokens_per_day=1_000, reserve_tokens=0)).tokens_used_today
    assert used_now == sum(i * 10 for i in range(10)) == 450
    fresh = await limiter.admit(KEY, rpm=1_000, tokens_per_day=1_000, reserve_tokens=100)
    refusal = next(o for o in outcomes if not o.admitted)
    assert await limiter.settle_many([(fresh, 40), (refusal, 0)]) == [450 + 40, None]
    admin.script_flush()  # as a Redis restart would: the pipeline loads the script again (SCRIPT LOAD only)
    again = await limiter.admit(KEY, rpm=1_000, tokens_per_day=1_000, reserve_tokens=10)
    assert await limiter.settle_many([(again, 10)]) == [500]


def test_a_batch_of_settlements_is_one_refund_per_key_and_day() -> None:
    """A busy key's settlements cost one script run per batch: what each request left unused (or overran)
    summed per key and day, refusals giving nothing back, another day's admission kept apart."""
    def admission(key_id: str, day: int, reserved: int, admitted: bool = True) -> Admission:
        return Admission(key_id, admitted, reserved, reserved if admitted else 0, day, 1, 0, 60, 1_000)

    other = "key_1111111111111111"
    batch = [(admission(KEY, 20_000, 100), 30), (admission(KEY, 20_000, 100), 100), (admission(other, 20_000, 50), 80),
             (admission(KEY, 20_000, 100, admitted=False), 0), (admission(KEY, 19_999, 10), 4)]
    assert merged_refunds(batch) == [(KEY, 20_000, 70), (other, 20_000, -30), (KEY, 19_999, 6)]


async def test_admissions_asked_together_share_one_round_trip_and_survive_a_forgotten_script(
    gateway_clients: list[aioredis.Redis], admin: redis.Redis,
) -> None:
    """Concurrent admissions on one limiter go to Redis as one pipeline of script runs, in the order asked;
    after SCRIPT FLUSH (a restarted Redis) the batch reloads the script and every admission still counts
    exactly once."""
    limiter = RateLimiter(gateway_clients[0])
    await limiter.admit(KEY, rpm=1_000, tokens_per_day=1_000_000, reserve_tokens=1)  # loads the script
    calls_before = _evalsha_calls(admin)
    pipelines: list[object] = []
    opened = limiter.client.pipeline
    limiter.client.pipeline = lambda **kw: pipelines.append(kw) or opened(**kw)  # type: ignore[method-assign]
    outcomes = await burst([limiter], 16, rpm=1_000, tokens_per_day=1_000_000, reserve_tokens=1)
    assert [o.requests_in_window for o in outcomes] == list(range(2, 18)), "in the order asked, each once"
    assert _evalsha_calls(admin) - calls_before == 16
    assert len(pipelines) == 1, "sixteen admissions, one round trip"

    admin.script_flush()
    outcomes = await burst([limiter], 16, rpm=20, tokens_per_day=1_000_000, reserve_tokens=1)
    assert [o.admitted for o in outcomes] == [True] * 3 + [False] * 13, "17 counted before, 20 per minute"
    assert [o.requests_in_window for o in outcomes[:3]] == [18, 19, 20]


async def test_a_batch_of_admissions_fails_together_when_redis_is_gone(
    acl_redis: tuple[EmbeddedRedis, RedisCredentials],
) -> None:
    server, credentials = acl_redis
    client = aioredis.Redis.from_url(credentials.url_for(server.url, "gateway"))
    limiter = RateLimiter(client)
    server.stop()
    results = await asyncio.gather(
        *(limiter.admit(KEY, rpm=10, tokens_per_day=100, reserve_tokens=1) for _ in range(4)), return_exceptions=True
    )
    # An outage, said as one (the gateway answers 503 budget_unavailable with retry-after, not a 500).
    assert all(isinstance(r, BudgetUnavailable) and "ConnectionError" in str(r) for r in results), results
    await client.aclose()


def _evalsha_calls(admin: redis.Redis) -> int:
    return int(admin.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))
