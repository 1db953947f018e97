"""Per-key request and token budgets, enforced atomically in Redis before the model is called.

One Lua script checks both limits and, only when both allow it, counts the request and reserves its
tokens: a burst of parallel requests can never overshoot either budget, whatever the number of gateway
replicas, because Redis runs one script at a time.

- Requests per minute: a sliding log (a sorted set of admission times, scored in milliseconds). A request
  is admitted when fewer than `rpm` requests were admitted in the 60 s before it, so no 60 s interval
  ever holds more than `rpm` admissions (a fixed per-minute window would let 2x through across a minute
  boundary). Memory is at most `rpm` entries per key; entries older than the window are dropped on the
  next call and the set expires after a minute of silence.
- Tokens per day: a budget per UTC calendar day, held in a hash {day, used}. A request reserves its
  prompt tokens plus its maximum output tokens before the call; `settle` gives back what it did not use
  (or charges the excess, when a model reported more than was reserved). A settlement arriving after the
  UTC day rolled over changes nothing: the new day's budget starts clean.

Refused requests count against nothing. The clock is Redis's own (TIME), so replicas with skewed clocks
agree. Keys live under `prefix` (the gateway's ACL user may touch `tunegate:gateway:*` only); the commands
the script calls are in shared/stack/redis_acl.py (`_LEASE_COMMANDS`), since Redis checks them too."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as redis
from redis.exceptions import NoScriptError

from shared.bus.outcomes import is_outage

log = logging.getLogger("tunegate.gateway.budgets")

Limit = Literal["requests_per_minute", "tokens_per_day", "request_over_daily_budget"]

WINDOW_MS = 60_000
DAY_S = 86_400

# KEYS: 1 request log (zset), 2 token budget (hash). ARGV: rpm, tokens_per_day, reserve, member.
# Returns {admitted (0/1), refused limit ('' when admitted), retry_after_ms, day, requests, tokens used}.
_ADMIT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local day = math.floor(tonumber(now[1]) / 86400)
local rpm = tonumber(ARGV[1])
local per_day = tonumber(ARGV[2])
local reserve = tonumber(ARGV[3])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - 60000)
local requests = redis.call('ZCARD', KEYS[1])
local rpm_wait = 0
if requests >= rpm then
  -- The window frees when enough of its oldest admissions age out to leave room for one more.
  local oldest = redis.call('ZRANGE', KEYS[1], requests - rpm, requests - rpm, 'WITHSCORES')
  rpm_wait = math.max(1, tonumber(oldest[2]) + 60000 - now_ms)
end

local used = 0
if tonumber(redis.call('HGET', KEYS[2], 'day') or -1) == day then
  used = tonumber(redis.call('HGET', KEYS[2], 'used') or 0)
end
local day_wait = 0
if used + reserve > per_day then
  day_wait = math.max(1, (day + 1) * 86400000 - now_ms)
end

if rpm_wait > 0 or day_wait > 0 then
  -- Both must clear before a retry can pass: name the one that takes longer.
  if rpm_wait >= day_wait then
    return {0, 'requests_per_minute', rpm_wait, day, requests, used}
  end
  return {0, 'tokens_per_day', day_wait, day, requests, used}
end

redis.call('ZADD', KEYS[1], now_ms, ARGV[4])
redis.call('PEXPIRE', KEYS[1], 60000)
redis.call('HSET', KEYS[2], 'day', day, 'used', used + reserve)
redis.call('PEXPIRE', KEYS[2], (day + 1) * 86400000 - now_ms + 3600000)
return {1, '', 0, day, requests + 1, used + reserve}
"""

# KEYS: 1 token budget. ARGV: day of the admission, tokens to add back (negative: charge more).
_SETTLE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'day') or -1)
if current ~= tonumber(ARGV[1]) then
  return -1
end
local used = tonumber(redis.call('HGET', KEYS[1], 'used') or 0) - tonumber(ARGV[2])
if used < 0 then used = 0 end
redis.call('HSET', KEYS[1], 'used', used)
return used
"""


class BudgetUnavailable(RuntimeError):
    """The budgets cannot be checked (Redis unreachable or refusing writes): the request is refused, never let
    through unmetered, and the client told it is an outage to retry, not a fault of the gateway's."""


@dataclass(frozen=True)
class Admission:
    """The outcome of `admit`. When refused, `limit` says which budget and `retry_after_s` how long until it
    frees (None for a request that alone is over the daily budget: waiting cannot help)."""

    key_id: str
    admitted: bool
    requested_tokens: int
    reserved_tokens: int
    """What this admission holds against the day's budget: `requested_tokens` when admitted, else 0."""
    day: int
    """Days since the epoch (UTC) the tokens were reserved on; a settlement applies to that day only."""
    requests_in_window: int
    tokens_used_today: int
    requests_per_minute: int
    tokens_per_day: int
    limit: Limit | None = None
    retry_after_s: float | None = None

    @property
    def retry_after(self) -> float | None:
        return self.retry_after_s

    @property
    def retry_after_header(self) -> str | None:
        """`Retry-After` in whole seconds, rounded up (never 0 for a refusal that frees later)."""
        if self.retry_after_s is None:
            return None
        return str(max(1, math.ceil(self.retry_after_s)))

    @property
    def reason(self) -> str:
        """Why a request was refused, for the client and the audit record (no secret, no prompt)."""
        if self.limit == "requests_per_minute":
            return (
                f"{self.requests_in_window} of {self.requests_per_minute} requests per minute used; "
                f"retry in {self.retry_after_s:.1f} s"
            )
        if self.limit == "tokens_per_day":
            return (
                f"{self.tokens_used_today} of {self.tokens_per_day} tokens for today (UTC) used or reserved and this "
                f"request needs up to {self.requested_tokens}; the budget resets in {self.retry_after_s:.0f} s"
            )
        if self.limit == "request_over_daily_budget":
            return (
                f"this request needs up to {self.requested_tokens} tokens (prompt + max_tokens), more than the "
                f"key's whole daily budget of {self.tokens_per_day}; send a shorter prompt or a lower max_tokens"
            )
        return "admitted"


class RateLimiter:
    def __init__(self, client: redis.Redis, prefix: str = "tunegate:gateway:") -> None:
        self.client = client
        self.prefix = prefix
        # register_script: EVALSHA, loading the script (SCRIPT LOAD) when Redis does not have it yet.
        self._admit = client.register_script(_ADMIT)
        self._settle = client.register_script(_SETTLE)
        self._asked: list[tuple[list[object], asyncio.Future[list[object]]]] = []
        self._sending: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    def request_log_key(self, key_id: str) -> str:
        return f"{self.prefix}rpm:{key_id}"

    def token_budget_key(self, key_id: str) -> str:
        return f"{self.prefix}tokens:{key_id}"

    async def admit(self, key_id: str, *, rpm: int, tokens_per_day: int, reserve_tokens: int) -> Admission:
        """Count one request and reserve `reserve_tokens` (prompt + maximum output), or refuse it and say
        why; nothing is counted for a refused request."""
        if rpm < 1 or tokens_per_day < 1:
            raise ValueError(f"limits must be positive (rpm={rpm}, tokens_per_day={tokens_per_day})")
        if reserve_tokens < 0:
            raise ValueError(f"reserve_tokens must not be negative (got {reserve_tokens})")
        if reserve_tokens > tokens_per_day:
            return Admission(
                key_id, False, reserve_tokens, 0, -1, 0, 0, rpm, tokens_per_day, limit="request_over_daily_budget"
            )
        member = secrets.token_hex(12)  # unique per admission: two in the same millisecond both count
        admitted, limit, wait_ms, day, requests, used = await self._run_admit(
            [self.request_log_key(key_id), self.token_budget_key(key_id), rpm, tokens_per_day, reserve_tokens, member]
        )
        counts = (int(day), int(requests), int(used), rpm, tokens_per_day)
        if admitted:
            return Admission(key_id, True, reserve_tokens, reserve_tokens, *counts)
        name = limit.decode() if isinstance(limit, bytes) else str(limit)
        return Admission(
            key_id, False, reserve_tokens, 0, *counts,
            limit=name,  # type: ignore[arg-type] - the script returns one of the Limit names
            retry_after_s=int(wait_ms) / 1000.0,
        )

    async def _run_admit(self, keys_and_args: list[object]) -> list[object]:
        """One run of the admission script. Admissions asked in the same turn of the event loop go to Redis
        in one pipeline, each still its own atomic script run, in the order asked: at 16 concurrent requests
        one round trip serves several, and each round trip costs the gateway a send, a wake-up and a reply."""
        future: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()
        if not self._asked:  # the task runs after the callbacks already ready: their admissions join this one
            task = asyncio.get_running_loop().create_task(self._send_admissions())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        self._asked.append((keys_and_args, future))
        return await future

    async def _send_admissions(self) -> None:
        batch, self._asked = self._asked, []
        try:
            results = await self._pipelined(self._admit.sha, _ADMIT, 2, [asked for asked, _ in batch])
        except Exception as exc:  # Redis unreachable: every request of the batch fails with it, as it would alone
            failure = BudgetUnavailable(f"Redis: {type(exc).__name__}: {exc}") if is_outage(exc) else exc
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the request went away meanwhile: its admission stays counted, as it would alone
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(list(result))  # type: ignore[arg-type]

    async def _pipelined(self, sha: str, script: str, key_count: int,
                         calls: Sequence[Sequence[object]]) -> list[object]:
        """Run a script once per call in one pipeline; a call's error is its result. NOSCRIPT (a restarted
        Redis forgot the script: the script did not run) loads it once and runs those calls again."""
        results: list[object] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in (1, 2):
            async with self.client.pipeline(transaction=False) as pipe:
                for index in todo:
                    pipe.evalsha(sha, key_count, *calls[index])
                answers = await pipe.execute(raise_on_error=False)
            missing = []
            for index, answer in zip(todo, answers, strict=True):
                if isinstance(answer, NoScriptError) and attempt == 1:
                    missing.append(index)
                else:
                    results[index] = answer
            if not missing:
                break
            await self.client.script_load(script)  # the ACL grants SCRIPT LOAD only
            todo = missing
        return results

    async def settle_many(self, settlements: Sequence[tuple[Admission, int]]) -> list[int | None]:
        """`settle` for many admissions in one round trip (a pipeline of the same script)."""
        todo = []
        for admission, used_tokens in settlements:
            _check_settled(used_tokens)
            if admission.admitted:
                todo.append((admission, used_tokens))
        if not todo:
            return [None] * len(settlements)
        answers = await self.refund_many([(a.key_id, a.day, a.reserved_tokens - used) for a, used in todo])
        left = iter(answers)
        return [next(left) if a.admitted else None for a, _ in settlements]

    async def refund_many(self, refunds: Sequence[tuple[str, int, int]]) -> list[int | None]:
        """Give back (key id, day of the admission, tokens; negative: charge more) in one pipeline; per refund,
        the tokens used today after it, or None when its day is over."""
        answers = await self._pipelined(
            self._settle.sha, _SETTLE, 1,
            [(self.token_budget_key(key_id), day, tokens) for key_id, day, tokens in refunds],
        )
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        return [None if (n := int(answer)) < 0 else n for answer in answers]  # type: ignore[call-overload]

    async def settle(self, key_id: str, admission: Admission, used_tokens: int) -> int | None:
        """After the call: give back the reserved tokens it did not use (or charge what it used beyond the
        reservation). Call once per admitted request. Returns the tokens used today after settling, or
        None when nothing applied (a refused admission, or the UTC day has rolled over since)."""
        _check_settled(used_tokens)
        if admission.key_id != key_id:
            raise ValueError(f"admission is for key {admission.key_id}, not {key_id}")
        if not admission.admitted:
            return None
        left = int(
            await self._settle(
                keys=[self.token_budget_key(key_id)],
                args=[admission.day, admission.reserved_tokens - used_tokens],
            )
        )
        return None if left < 0 else left


SETTLE_COALESCE_S = 0.02
MAX_SETTLED_TOKENS = 1_000_000_000
"""The most tokens one request is ever charged. Redis's Lua numbers are doubles: a count past 2^53 loses
precision and one past 2^63 turns the day's counter into -2^63 when read back, refusing the key for the rest
of the day. The gateway never settles more than what an upstream may believably report
(adapters/upstream.py MAX_REPORTED_TOKENS); this bound holds whatever the caller passes."""


def _check_settled(used_tokens: int) -> None:
    if not 0 <= used_tokens <= MAX_SETTLED_TOKENS:
        raise ValueError(f"used_tokens must be between 0 and {MAX_SETTLED_TOKENS} (got {used_tokens})")


def merged_refunds(settlements: Sequence[tuple[Admission, int]]) -> list[tuple[str, int, int]]:
    """One refund per key and day for a batch of settlements: the sum of what each request left unused (or
    overran), so a busy key costs one script run per batch rather than one per request. The budget ends
    where the single settlements would leave it; only the floor at zero, which a budget reaches solely when
    the key's counter was reset under in-flight requests, is applied once to the sum instead of per step."""
    merged: dict[tuple[str, int], int] = {}
    for admission, used_tokens in settlements:
        if admission.admitted:
            slot = (admission.key_id, admission.day)
            merged[slot] = merged.get(slot, 0) + admission.reserved_tokens - used_tokens
    return [(key_id, day, tokens) for (key_id, day), tokens in merged.items()]


class Settlements:
    """Settlements queued by answered requests and sent together, off the answers' path: the first waits
    `coalesce_s` for others to queue behind it, and whatever queued while one pipeline was in flight goes in
    the next (at 1,000 answers a second, one round trip for about twenty), merged into one refund per key and
    day (`merged_refunds`). A refund that comes late only
    leaves the budget stricter for a moment; a failed one is logged and dropped, which can only make the
    budget stricter."""

    def __init__(self, limiter: RateLimiter, *, coalesce_s: float = SETTLE_COALESCE_S) -> None:
        self.limiter = limiter
        self.coalesce_s = coalesce_s
        self._queued: list[tuple[Admission, int]] = []
        self._sender: asyncio.Task[None] | None = None

    def add(self, admission: Admission, used_tokens: int) -> None:
        if not admission.admitted:
            return
        self._queued.append((admission, max(0, min(used_tokens, MAX_SETTLED_TOKENS))))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        await asyncio.sleep(self.coalesce_s)
        while self._queued:
            batch, self._queued = self._queued, []
            try:
                await self.limiter.refund_many(merged_refunds(batch))
            except Exception:
                log.warning("token settlement of %d requests failed", len(batch), exc_info=True)

    async def drain(self) -> None:
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)
