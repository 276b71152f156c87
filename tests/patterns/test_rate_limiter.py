"""Rate limiters against real Redis (single node and cluster)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis

from patterns.rate_limiter import (
    FailurePolicy,
    FixedWindow,
    LocalTokenBucket,
    RateLimiter,
    SlidingLog,
    SlidingWindowCounter,
    TokenBucket,
)
from tests.patterns.helpers import closed_port_client, open_client

pytestmark = pytest.mark.integration

LIMIT = 50
WINDOW_MS = 60_000  # long enough that no window rolls over during the test

ALGORITHMS: dict[str, Callable[[], Any]] = {
    "fixed": lambda: FixedWindow(LIMIT, WINDOW_MS),
    "sliding_log": lambda: SlidingLog(LIMIT, WINDOW_MS),
    "sliding_counter": lambda: SlidingWindowCounter(LIMIT, WINDOW_MS),
    "token_bucket": lambda: TokenBucket(capacity=LIMIT, refill_per_s=0.001),
}


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_admits_exactly_the_limit_under_concurrency(app_client_factory: Any, prefix: str, algo: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            limiter = RateLimiter(client, ALGORITHMS[algo](), prefix=prefix)
            users = [f"user{i}" for i in range(3)]
            decisions = await asyncio.gather(*(limiter.check(u) for u in users for _ in range(4 * LIMIT)))
            for i, u in enumerate(users):
                mine = decisions[i * 4 * LIMIT:(i + 1) * 4 * LIMIT]
                assert sum(d.allowed for d in mine) == LIMIT, u
                assert all(d.source == "redis" for d in mine)
                denied = [d for d in mine if not d.allowed]
                assert all(d.retry_after_s > 0 and d.remaining == 0 for d in denied)
                assert sorted(d.remaining for d in mine if d.allowed) == list(range(LIMIT))
            assert limiter.counters["allowed"] == 3 * LIMIT
            assert limiter.counters["denied"] == 3 * 3 * LIMIT
        finally:
            await client.aclose()

    asyncio.run(main())


def test_sliding_log_does_not_record_denied_requests(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            limiter = RateLimiter(client, SlidingLog(5, 60_000), prefix=prefix)
            for _ in range(20):
                await limiter.check("u")
            assert await client.zcard(limiter.key("u")) == 5
            ttl = await client.pttl(limiter.key("u"))
            assert 0 < ttl <= 60_000
        finally:
            await client.aclose()

    asyncio.run(main())


def test_windows_reopen_and_retry_after_is_honest(app_client_factory: Any, prefix: str) -> None:
    """With a 300 ms window, waiting retry_after_s lets the next request in."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            for algo in (FixedWindow(3, 300), SlidingLog(3, 300), SlidingWindowCounter(3, 300), TokenBucket(3, 10)):
                limiter = RateLimiter(client, algo, prefix=prefix)
                results = [await limiter.check("u") for _ in range(4)]
                assert [r.allowed for r in results] == [True, True, True, False], algo
                wait_s = results[-1].retry_after_s
                assert 0 < wait_s <= 0.6, (algo, wait_s)
                await asyncio.sleep(wait_s + 0.02)
                assert (await limiter.check("u")).allowed, algo
        finally:
            await client.aclose()

    asyncio.run(main())


def test_user_keys_are_hash_tagged(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            limiter = RateLimiter(client, FixedWindow(1, 1000), prefix=prefix)
            assert limiter.key("alice") == f"{prefix}:{{alice}}:fw"
        finally:
            await client.aclose()

    asyncio.run(main())


@pytest.mark.parametrize(
    "policy, expect_allowed, source",
    [
        (FailurePolicy.OPEN, 10, "fail_open"),
        (FailurePolicy.CLOSED, 0, "fail_closed"),
        (FailurePolicy.LOCAL, 3, "local"),
    ],
)
def test_failure_policies_when_redis_is_down(policy: FailurePolicy, expect_allowed: int, source: str) -> None:
    async def main() -> None:
        client = closed_port_client()
        try:
            local = LocalTokenBucket(capacity=3, refill_per_s=0.001) if policy is FailurePolicy.LOCAL else None
            limiter = RateLimiter(client, FixedWindow(5, 1000), failure=policy, local=local)
            decisions = [await limiter.check("u") for _ in range(10)]
            assert sum(d.allowed for d in decisions) == expect_allowed
            assert {d.source for d in decisions} == {source}
            assert sum(limiter.counters.errors.values()) == 10  # every failure counted by type
            assert "ConnectionError" in limiter.counters.errors
            snap = limiter.counters.snapshot()
            assert snap["fail_open"] + snap["fail_closed"] + snap["local_allowed"] + snap["local_denied"] == 10
        finally:
            await client.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("policy", list(FailurePolicy))
def test_a_server_rejection_raises_instead_of_triggering_the_failure_policy(
        app_client_factory: Any, prefix: str, policy: FailurePolicy) -> None:
    """A bug (here: the user's key holds a list, so the script fails with WRONGTYPE) is
    not an outage: OPEN must not admit everyone, CLOSED must not deny everyone."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            local = LocalTokenBucket(capacity=3, refill_per_s=1) if policy is FailurePolicy.LOCAL else None
            limiter = RateLimiter(client, FixedWindow(5, 1000), failure=policy, local=local, prefix=prefix)
            await client.rpush(limiter.key("u"), "not a counter")
            with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
                await limiter.check("u")
            snap = limiter.counters.snapshot()
            assert snap["fail_open"] + snap["fail_closed"] + snap["local_allowed"] + snap["local_denied"] == 0
        finally:
            await client.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("bad", [
    lambda: TokenBucket(capacity=10, refill_per_s=0),
    lambda: TokenBucket(capacity=0, refill_per_s=1),
    lambda: FixedWindow(0, 1000),
    lambda: FixedWindow(10, 0),
    lambda: SlidingLog(-1, 1000),
    lambda: SlidingWindowCounter(10, -5),
    lambda: LocalTokenBucket(capacity=0, refill_per_s=1),
    lambda: LocalTokenBucket(capacity=1, refill_per_s=0),
])
def test_configuration_errors_are_rejected_at_construction(bad: Callable[[], Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        bad()


def test_user_ids_with_braces_get_their_own_budget(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            limiter = RateLimiter(client, SlidingLog(2, 60_000), prefix=prefix)
            users = ["a{b}", "a}b", "{a", "a%7Bb%7D", "a"]
            keys = {limiter.key(u) for u in users}
            assert len(keys) == len(users)  # escaping is one-to-one
            assert all(k.count("{") == 1 and k.count("}") == 1 for k in keys)  # exactly one hash tag
            for u in users:
                assert [(await limiter.check(u)).allowed for _ in range(3)] == [True, True, False], u
        finally:
            await client.aclose()

    asyncio.run(main())
