"""The lab's asyncio Sentinel client shares concurrent discoveries of the primary
(topologies.sentinel_client). Real sockets, no Redis: the "Sentinels" are closed local ports, so
every query fails at once as it does while no Sentinel answers."""
from __future__ import annotations

import asyncio
import socket
from collections import Counter
from typing import Any

import pytest
import redis.asyncio.sentinel
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError
from redis.backoff import NoBackoff

from topologies.sentinel_client import sentinel_class


def _closed_ports(n: int) -> list[tuple[str, int]]:
    out = []
    for _ in range(n):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            out.append(("127.0.0.1", int(s.getsockname()[1])))
    return out


def _counted(base: type[Any]) -> tuple[Any, Counter[int]]:
    """A Sentinel over three closed ports whose SENTINEL MASTERS queries are counted per Sentinel."""
    sentinel = sentinel_class(base, lambda a: a)(_closed_ports(3), sentinel_kwargs={"socket_connect_timeout": 0.5,
                                                                                     "retry": Retry(NoBackoff(), 0)})
    asked: Counter[int] = Counter()
    for i, one in enumerate(sentinel.sentinels):
        query = one.sentinel_masters

        async def counted(*args: Any, _i: int = i, _query: Any = query, **kwargs: Any) -> Any:
            asked[_i] += 1
            return await _query(*args, **kwargs)
        one.sentinel_masters = counted
    return sentinel, asked


def test_concurrent_discoveries_ask_each_sentinel_once_and_all_get_the_answer() -> None:
    """20 callers at once: one round of queries (old: 20 per Sentinel); each caller gets the error."""
    async def main() -> tuple[list[BaseException], Counter[int]]:
        sentinel, asked = _counted(redis.asyncio.sentinel.Sentinel)
        results = await asyncio.gather(*(sentinel.discover_master("lab") for _ in range(20)), return_exceptions=True)
        return list(results), asked

    results, asked = asyncio.run(main())
    assert all(isinstance(r, MasterNotFoundError) for r in results), results[:3]
    assert asked == Counter({0: 1, 1: 1, 2: 1})


def test_a_discovery_after_the_last_one_landed_asks_again() -> None:
    """Shared only while in flight: no answer is cached."""
    async def main() -> Counter[int]:
        sentinel, asked = _counted(redis.asyncio.sentinel.Sentinel)
        for _ in range(3):
            with pytest.raises(MasterNotFoundError):
                await sentinel.discover_master("lab")
        return asked

    assert asyncio.run(main()) == Counter({0: 3, 1: 3, 2: 3})


def test_a_caller_that_gives_up_does_not_cancel_the_others() -> None:
    async def main() -> tuple[BaseException | None, Counter[int]]:
        sentinel, asked = _counted(redis.asyncio.sentinel.Sentinel)
        impatient = asyncio.ensure_future(sentinel.discover_master("lab"))
        patient = asyncio.ensure_future(sentinel.discover_master("lab"))
        await asyncio.sleep(0)  # both are waiting on the one discovery
        impatient.cancel()
        try:
            await patient
        except MasterNotFoundError as exc:
            return exc, asked
        return None, asked

    error, asked = asyncio.run(main())
    assert isinstance(error, MasterNotFoundError)  # the discovery ran to its end
    assert asked == Counter({0: 1, 1: 1, 2: 1})


def test_each_caller_gets_an_error_of_its_own() -> None:
    """Callers annotate what they catch (the retry policy's note that an earlier attempt may have
    executed): one caller's note must not reach another's error."""
    async def main() -> list[BaseException]:
        sentinel, _ = _counted(redis.asyncio.sentinel.Sentinel)
        results = await asyncio.gather(*(sentinel.discover_master("lab") for _ in range(3)), return_exceptions=True)
        results[0].add_note("mine")
        return list(results)

    errors = asyncio.run(main())
    assert all(isinstance(e, MasterNotFoundError) for e in errors)
    assert len({id(e) for e in errors}) == 3 and str(errors[1]) == str(errors[0])
    assert getattr(errors[1], "__notes__", []) == []
