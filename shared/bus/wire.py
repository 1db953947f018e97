"""How an envelope sits in a Redis stream entry: FastStream's binary message format under `__data__`.

Entries written by other tools (a plain XADD with an `envelope` field or JSON fields) are accepted too, so
an operator can inject or replay events with redis-cli."""

from __future__ import annotations

import json
from typing import Any

from faststream.redis.parser.binary import BinaryMessageFormatV1

DATA_FIELD = b"__data__"
PLAIN_FIELD = b"envelope"


def split_fields(fields: dict[bytes, bytes]) -> tuple[bytes, dict[str, str]]:
    """The envelope bytes carried by one stream entry (not yet validated) and its message headers. Never
    raises, whatever the entry holds: a batch is dispatched entry by entry, and one entry that could not even
    be split would hold up every other entry read with it."""
    if DATA_FIELD in fields:
        body, headers = BinaryMessageFormatV1.parse(fields[DATA_FIELD])
        if not isinstance(body, bytes):  # the legacy JSON form's "data" may be any JSON value
            body = str(body).encode("utf-8", "surrogatepass")
        return body, {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}
    if PLAIN_FIELD in fields:
        return fields[PLAIN_FIELD], {}
    decoded: dict[str, Any] = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in fields.items()}
    return json.dumps(decoded).encode("utf-8"), {}


def body_of(fields: dict[bytes, bytes]) -> bytes:
    return split_fields(fields)[0]
