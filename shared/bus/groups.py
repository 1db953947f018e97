"""Consumer groups: created at id 0 before anyone reads, re-created when Redis loses them.

FastStream creates groups at `$` when its subscriber starts (earlier entries would never be delivered)
and stops the subscriber on NOGROUP after Redis loses its data; both are handled here."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)


def group_name(service: str) -> str:
    return f"tunegate-{service}"


async def ensure_group(redis: Redis, stream: str, group: str) -> bool:
    """Create `group` on `stream` at id 0 (creating the stream too). Returns True when it was missing."""
    try:
        await redis.xgroup_create(name=stream, groupname=group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise
    return True


async def ensure_groups(redis: Redis, streams: list[str], group: str) -> list[str]:
    created = []
    for stream in streams:
        if await ensure_group(redis, stream, group):
            created.append(stream)
    return created


async def group_exists(redis: Redis, stream: str, group: str) -> bool:
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such key: the stream itself is gone
        return False
    wanted = group.encode()
    return any(g.get("name") in (group, wanted) for g in groups)
