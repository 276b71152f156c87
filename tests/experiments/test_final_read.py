"""The shared final read: retried through an outage, raised at once on a server's error reply."""
from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from experiments.final_read import settled_read


class Flaky:
    """Fails with ``errors`` in turn, then returns ``value``."""

    def __init__(self, errors: list[BaseException], value: object = "ok") -> None:
        self.errors, self.value, self.calls = list(errors), value, 0

    async def __call__(self) -> object:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


def test_a_closed_connection_is_retried_and_named() -> None:
    read = Flaky([RedisConnectionError("Connection closed by server."), TimeoutError()], value={"a"})
    seen: list[str] = []
    assert asyncio.run(settled_read(read, timeout_s=5, errors=seen)) == {"a"}
    assert read.calls == 3
    assert seen == ["ConnectionError", "TimeoutError"]


def test_a_server_error_reply_is_raised_at_once() -> None:
    read = Flaky([ResponseError("WRONGTYPE")])
    with pytest.raises(ResponseError):
        asyncio.run(settled_read(read, timeout_s=5))
    assert read.calls == 1


def test_an_outage_longer_than_the_deadline_raises_the_last_error() -> None:
    read = Flaky([RedisConnectionError("down")] * 1000)
    with pytest.raises(RedisConnectionError):
        asyncio.run(settled_read(read, timeout_s=0.3))
    assert 1 < read.calls < 1000


def test_a_pattern_error_wrapping_an_outage_counts_as_the_outage() -> None:
    class Unavailable(Exception):
        pass

    wrapped = Unavailable("board down")
    wrapped.__cause__ = RedisConnectionError("refused")
    seen: list[str] = []
    assert asyncio.run(settled_read(Flaky([wrapped]), timeout_s=5, errors=seen)) == "ok"
    assert seen == ["ConnectionError"]
