"""Pure logic of the patterns, no Redis: counters, retry policy, jitter,
XFetch, local fallback limiter, sliding-window-counter maths, haversine."""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from patterns.cache_aside import xfetch_should_refresh
from patterns.common import Counters, RetryPolicy, jittered_ttl_ms, tagged
from patterns.proximity import haversine_m, offset
from patterns.rate_limiter import LocalTokenBucket, swc_estimate, swc_retry_after_ms


def test_counters_reject_unknown_names_and_count_errors_by_type() -> None:
    c = Counters(["hits"])
    c.inc("hits", 2)
    c.error(RedisConnectionError("x"))
    c.error(RedisConnectionError("y"))
    assert c.snapshot() == {"retries": 0, "hits": 2, "errors": {"ConnectionError": 2}}
    with pytest.raises(KeyError, match="hits"):
        c.inc("hitz")


def test_retry_policy_retries_transient_errors_and_counts_each_attempt() -> None:
    counters = Counters([])
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RedisConnectionError("refused")
        return "ok"

    policy = RetryPolicy(attempts=5, base_s=0.001, cap_s=0.002)
    assert asyncio.run(policy.run(flaky, counters)) == "ok"
    assert calls == 3
    assert counters["retries"] == 2
    assert counters.errors == {"ConnectionError": 2}


def test_retry_policy_does_not_retry_server_rejections_and_stops_at_attempts() -> None:
    counters = Counters([])
    calls = 0

    async def wrong_type() -> None:
        nonlocal calls
        calls += 1
        raise ResponseError("WRONGTYPE")

    with pytest.raises(ResponseError):
        asyncio.run(RetryPolicy(attempts=5, base_s=0.001).run(wrong_type, counters))
    assert calls == 1

    async def down() -> None:
        raise RedisConnectionError("down")

    counters = Counters([])
    with pytest.raises(RedisConnectionError):
        asyncio.run(RetryPolicy(attempts=3, base_s=0.001, cap_s=0.001).run(down, counters))
    assert counters["retries"] == 2 and counters.errors["ConnectionError"] == 3


def test_retry_policy_attempt_timeout_is_counted_as_timeout() -> None:
    counters = Counters([])

    async def stall() -> None:
        await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        asyncio.run(RetryPolicy(attempts=2, base_s=0.001, attempt_timeout_s=0.01).run(stall, counters))
    assert counters.errors == {"TimeoutError": 2}


def test_retry_policy_keeps_its_deadline() -> None:
    """No wait that would end past ``deadline_s`` is started (tenacity's stop_after_delay
    lets the last one run), and an attempt still running at the deadline is cut."""
    import time

    async def down() -> None:
        raise RedisConnectionError("down")

    async def hangs() -> None:
        await asyncio.sleep(2)

    for _ in range(5):  # waits are random: several draws
        started = time.monotonic()
        with pytest.raises(RedisConnectionError):
            asyncio.run(RetryPolicy(attempts=100, base_s=0.25, cap_s=0.25, deadline_s=0.3).run(down, Counters([])))
        assert time.monotonic() - started < 0.3 + 0.1
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(RetryPolicy(attempts=3, deadline_s=0.2).run(hangs, Counters([])))
    assert time.monotonic() - started < 1.0  # not 2 s (one attempt), let alone 6 s (three)


def test_fenced_resource_accepts_a_fence_once_per_holder() -> None:
    from patterns.lock import FencedResource

    async def main() -> None:
        r = FencedResource()
        assert await r.write("k", "a1", 5, "tok-a")
        assert await r.write("k", "a2", 5, "tok-a")  # the same holder writes again
        assert not await r.write("k", "b", 5, "tok-b")  # the fence handed out twice
        assert not await r.write("k", "old", 4, "tok-c")  # a stale holder
        assert await r.write("k", "c", 6, "tok-c")
        assert (r.accepted, r.rejected, r.fence_reused, r.data) == (3, 2, 1, {"k": "c"})

    asyncio.run(main())


def test_jittered_ttl_stays_in_range_and_spreads() -> None:
    rng = random.Random(1)
    ttls = [jittered_ttl_ms(1000, 0.2, rng) for _ in range(1000)]
    assert min(ttls) >= 1000 and max(ttls) <= 1200
    assert len(set(ttls)) > 100
    with pytest.raises(ValueError):
        jittered_ttl_ms(1000, 1.5)


def test_tagged_rejects_braces() -> None:
    assert tagged("user1") == "{user1}"
    with pytest.raises(ValueError):
        tagged("a}b")


def test_xfetch_decision() -> None:
    # far from expiry: never refresh, even with the unluckiest draw
    assert not xfetch_should_refresh(now_ms=0, expiry_ms=100_000, delta_ms=10, beta=1.0, rand=1e-9)
    # past expiry: always refresh
    assert xfetch_should_refresh(now_ms=100_001, expiry_ms=100_000, delta_ms=10, beta=1.0, rand=1.0)
    # beta 0 disables
    assert not xfetch_should_refresh(now_ms=100_001, expiry_ms=100_000, delta_ms=10, beta=0, rand=0.5)
    # 50 ms before expiry with a 100 ms recompute: refresh iff -ln(rand) >= 0.5, i.e. rand <= e^-0.5
    assert xfetch_should_refresh(99_950, 100_000, 100, 1.0, math.exp(-0.5) - 1e-6)
    assert not xfetch_should_refresh(99_950, 100_000, 100, 1.0, math.exp(-0.5) + 1e-6)
    # the probability grows as expiry approaches
    rng = random.Random(3)

    def rate(now: float) -> float:
        return sum(xfetch_should_refresh(now, 100_000, 100, 1.0, rng.random()) for _ in range(5000)) / 5000

    assert rate(99_500) < rate(99_900) < rate(99_990)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_local_token_bucket_bursts_then_refills() -> None:
    clock = FakeClock()
    bucket = LocalTokenBucket(capacity=5, refill_per_s=10, clock=clock)
    results = [bucket.check("u").allowed for _ in range(7)]
    assert results == [True] * 5 + [False] * 2
    denied = bucket.check("u")
    assert denied.retry_after_s == pytest.approx(0.1) and denied.source == "local"
    clock.t += 0.1
    assert bucket.check("u").allowed
    assert not bucket.check("u").allowed
    assert bucket.check("other").allowed  # per user
    clock.t += 100
    assert bucket.check("u").remaining == 4  # capped at capacity
    assert bucket.check("u", cost=6).retry_after_s == math.inf


def test_local_token_bucket_is_bounded() -> None:
    bucket = LocalTokenBucket(1, 1, max_users=10, clock=FakeClock())
    for i in range(100):
        bucket.check(f"u{i}")
    assert len(bucket._buckets) == 10


def test_sliding_window_counter_maths() -> None:
    assert swc_estimate(prev=10, cur=2, elapsed_ms=250, window_ms=1000) == pytest.approx(9.5)
    # room now in this window: no wait
    assert swc_retry_after_ms(prev=0, cur=3, elapsed_ms=100, window_ms=1000, limit=10, cost=1) == 0
    # prev=10 decays: need 10*(1000-e-t)/1000 + 5 + 1 <= 10 -> e+t >= 600
    assert swc_retry_after_ms(prev=10, cur=5, elapsed_ms=100, window_ms=1000, limit=10, cost=1) == pytest.approx(500)
    # current window full: wait past the boundary until cur*(w-e')/w + 1 <= 10 -> e' >= 100
    assert swc_retry_after_ms(prev=0, cur=10, elapsed_ms=400, window_ms=1000, limit=10, cost=1) == pytest.approx(700)
    assert swc_retry_after_ms(prev=0, cur=0, elapsed_ms=0, window_ms=1000, limit=10, cost=11) == -1


def test_haversine_and_offset_agree() -> None:
    lon, lat = offset(2.35, 48.85, 3000.0, 4000.0)
    assert haversine_m(2.35, 48.85, lon, lat) == pytest.approx(5000.0, rel=1e-3)
    assert haversine_m(0, 0, 0, 0) == 0


def test_registry_loads_every_pattern_and_rejects_unknown_names() -> None:
    import patterns

    for name in patterns.REGISTRY:
        assert patterns.load(name).__name__ == patterns.REGISTRY[name]
    with pytest.raises(KeyError, match="known"):
        patterns.load("bloom_filter")


def test_half_open_breaker_lets_one_trial_call_through_and_rejects_the_rest() -> None:
    import redis

    from patterns.breaker import AsyncBreaker, CircuitBreakerError

    async def main() -> None:
        breaker = AsyncBreaker(fail_max=1, reset_timeout_s=0.05)

        async def fails() -> None:
            raise redis.ConnectionError("down")

        with pytest.raises(redis.ConnectionError):
            await breaker.call(fails)
        assert breaker.state == "open"
        deadline = asyncio.get_running_loop().time() + 5
        release = asyncio.Event()

        async def slow_success() -> str:
            await release.wait()
            return "ok"

        while True:  # after reset_timeout the next call becomes the half-open trial
            trial = asyncio.ensure_future(breaker.call(slow_success))
            await asyncio.sleep(0)
            if not trial.done():
                break
            with pytest.raises(CircuitBreakerError):
                trial.result()
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        assert breaker.state == "half-open"
        with pytest.raises(CircuitBreakerError, match="trial call is already in flight"):
            await breaker.call(slow_success)  # a second caller does not pile onto the sick server
        release.set()
        assert await trial == "ok" and breaker.state == "closed"
        assert await breaker.call(slow_success) == "ok"

    asyncio.run(main())


def test_product_revisions_follow_commit_order(tmp_path: Any) -> None:
    """Concurrent price updates on a thread pool: each commit gets the next revision,
    and the row's final price is the one written with the highest revision."""
    from patterns.products_db import ProductsDB

    db = ProductsDB.create(tmp_path / "c.sqlite", n_products=3, seed=1, workers=4)

    async def main() -> None:
        start = await db.get_product(2)
        assert start is not None and start.revision == 0
        revisions = await asyncio.gather(*(db.update_price(2, 1000 + i) for i in range(40)))
        assert sorted(r for r in revisions if r is not None) == list(range(1, 41))
        final = await db.get_product(2)
        assert final is not None and final.revision == 40
        assert final.price_cents == 1000 + revisions.index(40)
        assert await db.update_price(99, 1) is None

    try:
        asyncio.run(main())
    finally:
        db.close()
