"""Distributed lock, fencing and the naive baseline against real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from patterns.common import RetryPolicy
from patterns.lock import DistributedLock, FencedResource, LockTimeout, LockUnavailable, NaiveIncrLock
from tests.patterns.helpers import closed_port_client, eventually, open_client

pytestmark = pytest.mark.integration


def test_never_two_holders_under_contention(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            holders = 0
            max_holders = 0
            entered = 0
            fences: list[int] = []

            async def worker(i: int) -> None:
                nonlocal holders, max_holders, entered
                lock = DistributedLock(client, f"{prefix}:res", ttl_ms=5_000)  # one instance per "process"
                for _ in range(5):
                    async with lock.hold(timeout_s=30, watchdog=False) as lease:
                        holders += 1
                        max_holders = max(max_holders, holders)
                        entered += 1
                        fences.append(lease.fence)
                        await asyncio.sleep(0.001)
                        holders -= 1

            await asyncio.gather(*(worker(i) for i in range(20)))
            assert max_holders == 1
            assert entered == 100
            assert fences == sorted(fences) and len(set(fences)) == 100  # strictly increasing fences
            assert await client.exists(f"lock:{{{prefix}:res}}") == 0  # all released
        finally:
            await client.aclose()

    asyncio.run(main())


def test_fenced_resource_rejects_the_stale_holder(app_client_factory: Any, prefix: str) -> None:
    """A pauses past its TTL, B acquires and writes, A wakes and writes: rejected."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            storage = FencedResource()
            lock_a = DistributedLock(client, f"{prefix}:doc", ttl_ms=200)
            lock_b = DistributedLock(client, f"{prefix}:doc", ttl_ms=5_000)
            lease_a = await lock_a.acquire(timeout_s=1)
            assert await lock_b.try_acquire() is None  # held by A

            # A "pauses" (GC, VM stall) longer than its TTL; B gets the lock once it expires
            lease_b = await lock_b.acquire(timeout_s=5)
            assert lease_b.fence > lease_a.fence
            assert not lease_a.is_valid()  # A's own local deadline has passed too
            assert await storage.write("doc", "from B", lease_b.fence)
            assert not await storage.write("doc", "from A (stale)", lease_a.fence)
            assert storage.data == {"doc": "from B"} and storage.rejected == 1

            # A's release must not free B's lock
            assert not await lock_a.release(lease_a)
            assert lock_a.counters["release_not_owned"] == 1
            assert await client.exists(lock_b.key) == 1
            assert await lock_b.release(lease_b)
        finally:
            await client.aclose()

    asyncio.run(main())


def test_acquire_times_out_and_retries_idempotently(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            lock = DistributedLock(client, f"{prefix}:x", ttl_ms=10_000)
            lease = await lock.acquire(timeout_s=1)
            with pytest.raises(LockTimeout):
                await lock.acquire(timeout_s=0.2)
            assert lock.counters["timeouts"] == 1 and lock.counters["busy"] >= 2
            # re-sending the same token (a retry after a lost reply) keeps the lease and its fence
            again = await lock._acquire(keys=[lock.key, lock.fence_key], args=[lease.token, 10_000])
            assert [int(x) for x in again] == [1, lease.fence]
            assert await lock.release(lease)
        finally:
            await client.aclose()

    asyncio.run(main())


def test_watchdog_keeps_the_lease_and_flags_loss(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            lock = DistributedLock(client, f"{prefix}:w", ttl_ms=300)
            async with lock.hold(timeout_s=1) as lease:
                await asyncio.sleep(0.9)  # three TTLs: only renewals keep it
                assert lease.is_valid()
                assert await client.get(lock.key) is not None
                assert lock.counters["extended"] >= 2
                await client.delete(lock.key)  # someone (an operator, a failover) removes it
                await eventually(lambda: _is_set(lease.lost), 2, "watchdog flags the loss")
            assert lock.counters["lost"] == 1
        finally:
            await client.aclose()

    asyncio.run(main())


async def _is_set(event: asyncio.Event) -> bool:
    return event.is_set()


def test_lock_raises_unavailable_when_redis_is_down() -> None:
    async def main() -> None:
        client = closed_port_client()
        try:
            lock = DistributedLock(client, "x", retry=RetryPolicy(attempts=2, base_s=0.001))
            with pytest.raises(LockUnavailable):
                await lock.try_acquire()
            with pytest.raises(LockUnavailable):
                await lock.acquire(timeout_s=0.3)  # retried until the deadline, then the cause
            assert lock.counters.errors["ConnectionError"] >= 3
        finally:
            await client.aclose()

    asyncio.run(main())


def test_naive_incr_lock_release_frees_someone_elses_lock(app_client_factory: Any, prefix: str) -> None:
    """Documents the seed's bug: after A's TTL expired and B took the lock, A's
    release deletes B's lock and C gets in while B still works."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            a, b, c = (NaiveIncrLock(client, f"{prefix}:n", ttl_s=1) for _ in range(3))
            assert await a.try_acquire()
            await eventually(b.try_acquire, 3, "A's lock expires and B takes it", interval_s=0.05)
            await a.release()  # A finishes late: no token check
            assert await c.try_acquire()  # two holders: B and C
        finally:
            await client.aclose()

    asyncio.run(main())
