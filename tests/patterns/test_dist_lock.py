"""Distributed lock, fencing and the naive baseline against real Redis."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from faults import kinds
from faults.injector import FaultInjector
from patterns.common import RetryPolicy, prepare_client
from patterns.lock import (
    DistributedLock,
    FencedResource,
    LockNotOwned,
    LockNotReplicated,
    LockTimeout,
    LockUnavailable,
    NaiveIncrLock,
)
from tests.patterns.helpers import closed_port_client, eventually, no_retry_client, open_client, run_healed

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
            assert await storage.write("doc", "from B", lease_b.fence, lease_b.token)
            assert not await storage.write("doc", "from A (stale)", lease_a.fence, lease_a.token)
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


def test_a_busy_lock_times_out_as_busy_even_when_a_wait_ends_at_the_deadline(app_client_factory: Any,
                                                                             prefix: str) -> None:
    # waits of at most 0.2 ms: attempts follow each other up to the deadline, so an attempt started with
    # less time left than a reply takes would be cut and report Redis unavailable for a lock that was busy
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            lock = DistributedLock(client, f"{prefix}:busy", ttl_ms=10_000)
            lease = await lock.acquire(timeout_s=1)
            for _ in range(20):
                with pytest.raises(LockTimeout):
                    await lock.acquire(timeout_s=0.05, base_wait_s=0.0001, max_wait_s=0.0002)
            assert lock.counters["timeouts"] == 20 and lock.counters["busy"] >= 40
            assert await lock.release(lease)
        finally:
            await client.aclose()

    asyncio.run(main())


def test_watchdog_keeps_the_lease_and_flags_loss(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            lock = DistributedLock(client, f"{prefix}:w", ttl_ms=300)
            with pytest.raises(LockNotOwned):  # the section learns it was not protected to its end
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


def test_a_reused_fence_from_another_holder_is_rejected(app_client_factory: Any, prefix: str) -> None:
    """A failover that loses the fence INCR (asynchronous replication) hands the next
    holder a fence number already used. Storage keeps the token with the fence: the
    same holder may write again under its fence, another holder under that fence not."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            storage = FencedResource()
            lock = DistributedLock(client, f"{prefix}:doc", ttl_ms=5_000)
            first = await lock.acquire(timeout_s=1)
            assert await storage.write("doc", "first", first.fence, first.token)
            assert await storage.write("doc", "first again", first.fence, first.token)  # same holder
            await lock.release(first)
            # what the promoted replica looks like when the INCR never reached it
            await client.set(lock.fence_key, first.fence - 1)
            second = await lock.acquire(timeout_s=1)
            assert second.fence == first.fence and second.token != first.token
            assert not await storage.write("doc", "second", second.fence, second.token)
            assert storage.fence_reused == 1 and storage.data == {"doc": "first again"}
            await lock.release(second)
        finally:
            await client.aclose()

    asyncio.run(main())


def test_hold_raises_when_the_lock_expired_before_release(app_client_factory: Any, prefix: str) -> None:
    """A critical section that overran its TTL (no watchdog) and lost the lock to
    another client does not finish silently."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            lock = DistributedLock(client, f"{prefix}:x", ttl_ms=200)
            other = DistributedLock(client, f"{prefix}:x", ttl_ms=5_000)
            with pytest.raises(LockNotOwned):
                async with lock.hold(timeout_s=1, watchdog=False):
                    taken = await other.acquire(timeout_s=2)  # our TTL runs out while we work
            assert lock.counters["release_not_owned"] == 1
            assert await other.release(taken)
            with pytest.raises(ValueError, match="body"):  # the body's own error wins
                async with lock.hold(timeout_s=1, watchdog=False):
                    await asyncio.sleep(0.3)
                    raise ValueError("body")
        finally:
            await client.aclose()

    asyncio.run(main())


def test_acquire_keeps_its_deadline_when_redis_is_slow(app_client_factory: Any, prefix: str) -> None:
    """Every reply from Redis 250 ms late: acquire(timeout_s=0.3) on a busy lock gives
    up at its deadline instead of starting another 250 ms attempt after it."""
    topo = app_client_factory.topo
    injector = FaultInjector(topo)
    slow = [kinds.make("latency", n.name, latency_ms=250, direction="downstream") for n in topo.spec.redis_nodes]

    async def main() -> None:
        client = await prepare_client(no_retry_client(app_client_factory))
        try:
            holder = DistributedLock(client, f"{prefix}:d", ttl_ms=10_000)
            lease = await holder.acquire(timeout_s=1)
            await asyncio.gather(*(client.ping() for _ in range(4)))  # connections set up before the fault
            for f in slow:
                await asyncio.to_thread(injector.inject, f)
            waiter = DistributedLock(client, f"{prefix}:d", retry=RetryPolicy.none())
            started = time.monotonic()
            with pytest.raises((LockTimeout, LockUnavailable)):
                await waiter.acquire(timeout_s=0.3)
            elapsed = time.monotonic() - started
            for f in slow:
                await asyncio.to_thread(injector.heal, f)
            assert elapsed < 0.3 + 0.15, elapsed  # not 0.3 + another attempt (>= 0.25 s)
            await holder.release(lease)
        finally:
            await client.aclose()

    run_healed(topo, main())


def test_an_acquire_whose_reply_was_lost_gets_its_own_lock(app_client_factory: Any, prefix: str) -> None:
    """The first attempt takes the lock but its reply comes after the client's timeout.
    The retry, with the same token, finds its own lock instead of waiting out the TTL."""
    topo = app_client_factory.topo
    injector = FaultInjector(topo)
    slow = [kinds.make("latency", n.name, latency_ms=600, direction="downstream") for n in topo.spec.redis_nodes]

    async def main() -> None:
        client = await prepare_client(no_retry_client(app_client_factory, socket_timeout=0.3))
        try:
            lock = DistributedLock(client, f"{prefix}:l", ttl_ms=30_000, retry=RetryPolicy.none())
            await lock.release(await lock.acquire(timeout_s=1))  # the script is loaded on the key's node
            await asyncio.gather(*(client.ping() for _ in range(4)))

            async def heal_soon() -> None:
                await asyncio.sleep(0.4)
                for f in slow:
                    await asyncio.to_thread(injector.heal, f)

            for f in slow:
                await asyncio.to_thread(injector.inject, f)
            healer = asyncio.create_task(heal_soon())
            lease = await lock.acquire(timeout_s=3, base_wait_s=0.05, max_wait_s=0.2)
            await healer
            assert lock.counters.errors  # the lost reply was seen
            assert await client.get(lock.key) == f"{lease.token}:{lease.fence}".encode()
            assert await lock.release(lease)
        finally:
            await client.aclose()

    run_healed(topo, main())


def test_fence_confirmed_by_replicas_or_refused(app_client_factory: Any, prefix: str) -> None:
    """``fence_replicas=1``: the acquire script and WAIT go on one connection. On the
    single node there is no replica, so the grant is released and refused; on the
    Cluster the key's primary has a replica and the grant stands until that replica
    is paused."""
    topo = app_client_factory.topo

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            lock = DistributedLock(client, f"{prefix}:r", ttl_ms=5_000, fence_replicas=1, fence_wait_ms=200)
            if app_client_factory.topology == "single":
                with pytest.raises(LockNotReplicated, match="0 of 1"):
                    await lock.acquire(timeout_s=1)
                assert await client.exists(lock.key) == 0  # the unconfirmed grant was released
                return
            lease = await lock.acquire(timeout_s=1)
            assert await lock.release(lease)
            replica = _replica_of_key(topo, client, lock.key)
            topo.pause(replica)
            try:
                with pytest.raises(LockNotReplicated):
                    await lock.acquire(timeout_s=1)
            finally:
                topo.resume(replica)
            assert await client.exists(lock.key) == 0
        finally:
            await client.aclose()

    asyncio.run(main())


def _replica_of_key(topo: Any, client: Any, key: str) -> str:
    """Name of the replica of the Cluster primary serving ``key``."""
    primary_port = int(client.get_node_from_key(key).port)
    by_port = {n.port: n.name for n in topo.spec.redis_nodes}
    with topo.node_client(by_port[primary_port], decode_responses=True) as c:
        my_id = c.cluster("MYID")
        nodes = c.cluster("NODES")
    for addr, info in nodes.items():
        if info["master_id"] == my_id:
            return by_port[int(addr.split(":")[1].split("@")[0])]
    raise AssertionError(f"no replica for the primary on port {primary_port}")
