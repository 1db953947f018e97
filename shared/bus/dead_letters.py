"""Dead-letter streams: `<stream>.dlq` keeps the original body, the error and where it came from.

Moving an entry is one MULTI/EXEC (XADD to the DLQ + XACK + forget the recorded error), so an entry is
never both dead-lettered and still pending, nor acked without being dead-lettered."""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis

from shared.events.streams import dlq_name


def errors_key(group: str) -> str:
    return f"tunegate:errors:{group}"


def error_field(stream: str, entry_id: bytes | str) -> str:
    entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return f"{stream}|{entry}"


async def record_error(redis: Redis, group: str, stream: str, entry_id: bytes, error: str) -> None:
    """Remember the last error of an entry, so whichever consumer dead-letters it can say why."""
    await redis.hset(errors_key(group), error_field(stream, entry_id), error[:4000])


async def last_error(redis: Redis, group: str, stream: str, entry_id: bytes) -> str | None:
    value = await redis.hget(errors_key(group), error_field(stream, entry_id))
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


async def move_to_dlq(
    redis: Redis,
    *,
    stream: str,
    group: str,
    consumer: str,
    entry_id: bytes,
    body: bytes,
    reason: str,
    deliveries: int,
) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(
            dlq_name(stream),
            {
                "stream": stream,
                "entry_id": entry_id,
                "group": group,
                "consumer": consumer,
                "deliveries": str(deliveries),
                "reason": reason[:4000],
                "failed_at": datetime.now(UTC).isoformat(),
                "body": body,
            },
        )
        pipe.xack(stream, group, entry_id)
        pipe.hdel(errors_key(group), error_field(stream, entry_id))
        await pipe.execute()
