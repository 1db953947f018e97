"""Which handler failures are the infrastructure's (no delivery used up) and which are the event's."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from sqlalchemy.exc import OperationalError

from shared.bus.outcomes import is_outage


def _raised_from(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("the handler gave up") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize("error", [
    OperationalError("SELECT 1", {}, ConnectionRefusedError("connection to server failed")),
    RedisConnectionError("Connection closed by server."),
    ConnectionResetError("reset by peer"),
    ResponseError("MISCONF Errors writing to the AOF file: No space left on device"),
    _raised_from(RedisConnectionError("Error 111 connecting")),
])
def test_an_unreachable_database_or_redis_is_an_outage(error: BaseException) -> None:
    assert is_outage(error)


@pytest.mark.parametrize("error", [
    ValueError("poison pill"),
    FileNotFoundError("the dataset is gone"),  # an OSError, and the event's problem
    ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    KeyError("job_id"),
])
def test_the_events_own_failures_are_not(error: BaseException) -> None:
    assert not is_outage(error)


def test_an_outage_only_in_the_implicit_context_is_not_one() -> None:
    """An error raised while handling another (not `from` it) is judged on its own."""
    try:
        try:
            raise RedisConnectionError("down")
        except RedisConnectionError:
            raise ValueError("the handler's own bug") from None
    except ValueError as error:
        assert not is_outage(error)
