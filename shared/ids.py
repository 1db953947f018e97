"""Time-ordered identifiers (UUIDv7, RFC 9562) so ids sort by creation time in logs and databases."""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> str:
    """Return a UUIDv7 string: 48-bit Unix milliseconds, version and variant bits, 74 random bits."""
    unix_ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (unix_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def new_job_id() -> str:
    return f"job_{uuid7().replace('-', '')}"
