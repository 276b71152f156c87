"""AsyncBreaker: one transition per state change, also with calls in flight when it trips."""
from __future__ import annotations

import asyncio

import pytest
import redis

from patterns.breaker import AsyncBreaker, CircuitBreakerError


def test_calls_in_flight_when_the_breaker_trips_do_not_open_it_again() -> None:
    # 20 requests are in flight on a stalled Redis when the first failures trip the breaker; the
    # stragglers then time out one by one. Each used to call open() again: "open -> open" transitions
    # (17 of them from 20 in-flight timeouts) and an open period restarted by every straggler.
    async def main() -> None:
        breaker = AsyncBreaker(fail_max=3, reset_timeout_s=60)
        transitions: list[tuple[str, str]] = []
        breaker.add_listener(lambda old, new: transitions.append((old, new)))
        release = asyncio.Event()

        async def stalled() -> None:
            await release.wait()
            raise redis.TimeoutError("timed out")

        calls = [asyncio.ensure_future(breaker.call(stalled)) for _ in range(20)]
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, redis.TimeoutError) for r in results)  # each caller sees its own error
        assert transitions == [("closed", "open")]
        assert breaker.stragglers == 17
        opened_at = breaker.breaker._state_storage.opened_at
        with pytest.raises(CircuitBreakerError):
            await breaker.call(stalled)
        assert breaker.breaker._state_storage.opened_at == opened_at  # the open period runs from the first trip

    asyncio.run(main())
