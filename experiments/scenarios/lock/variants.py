"""The lock variants behind one interface (``Locks``): acquire a named lock by a deadline,
release it, read the fence counters back.

* ``safe`` and ``nofence``: ``patterns.lock.DistributedLock`` (a fencing token per grant);
* ``naive``: ``NaiveIncrLock`` (INCR + EXPIRE, no token), the seed's lock, the baseline;
* ``redlock``: ``patterns.redlock.Redlock`` over the ``redlock`` topology's five
  independent primaries (a majority of grants, a validity time, no fencing token).
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any, Protocol

from labcommon.errors import LabError, UnknownNameError
from patterns import redlock
from patterns.common import REDIS_FAILURES, Counters, RetryPolicy
from patterns.lock import COUNTERS, DistributedLock, Lease, LockTimeout, NaiveIncrLock

VARIANTS = ("safe", "nofence", "naive", "redlock")
UNFENCED = ("naive", "redlock")  # variants without a fencing token: the resource cannot refuse a stale write


@dataclass(frozen=True)
class Grant:
    """A (probable) acquisition: the fencing token (None for the naive lock) and the lease."""

    lock: str
    token: int | None
    lease: Lease | redlock.RedlockLease | None = None

    @property
    def holder(self) -> str | None:
        """Who holds it: the lease's random token (None for the naive lock)."""
        return self.lease.token if self.lease is not None else None


class Locks(Protocol):
    counters: Counters

    async def acquire(self, lock: str, timeout_s: float) -> Grant: ...

    async def release(self, grant: Grant) -> bool: ...

    async def fence_counters(self) -> dict[str, int] | None: ...


class TokenLocks:
    """``DistributedLock`` per name, one attempt per Redis call (the acquire loop
    itself retries until its deadline), one set of counters for all."""

    def __init__(self, client: Any, names: list[str], ttl_ms: int) -> None:
        self.counters = Counters(COUNTERS)
        self.locks = {n: DistributedLock(client, n, ttl_ms=ttl_ms, retry=RetryPolicy.none(), counters=self.counters)
                      for n in names}

    async def acquire(self, lock: str, timeout_s: float) -> Grant:
        lease = await self.locks[lock].acquire(timeout_s)
        return Grant(lock, lease.fence, lease)

    async def release(self, grant: Grant) -> bool:
        assert isinstance(grant.lease, Lease)  # DistributedLock hands out a Lease
        return await self.locks[grant.lock].release(grant.lease)

    async def fence_counters(self) -> dict[str, int] | None:
        """Each lock's fence counter as the current primary has it now (None if it cannot be read)."""
        try:
            return {name: int(await lock.client.get(lock.fence_key) or 0) for name, lock in self.locks.items()}
        except REDIS_FAILURES:
            return None


class NaiveLocks:
    """``NaiveIncrLock`` per name, polled until the deadline (it has no blocking acquire)."""

    def __init__(self, client: Any, names: list[str], ttl_ms: int) -> None:
        self.counters = Counters(("acquired", "busy", "released", "timeouts"))
        self.locks = {n: NaiveIncrLock(client, n, ttl_s=max(1, ttl_ms // 1000)) for n in names}

    async def acquire(self, lock: str, timeout_s: float) -> Grant:
        deadline = time.monotonic() + timeout_s
        while True:
            if await self.locks[lock].try_acquire():
                self.counters.inc("acquired")
                return Grant(lock, None)
            self.counters.inc("busy")
            if time.monotonic() >= deadline:
                self.counters.inc("timeouts")
                raise LockTimeout(f"{self.locks[lock].key} not acquired within {timeout_s}s")
            await asyncio.sleep(random.uniform(0.002, 0.02))

    async def release(self, grant: Grant) -> bool:
        await self.locks[grant.lock].release()  # a bare DEL: it cannot tell whether the lock was still ours
        self.counters.inc("released")
        return True

    async def fence_counters(self) -> dict[str, int] | None:
        return None  # no fence at all


class RedlockLocks:
    """``Redlock`` per name over the independent nodes' clients (the ``redlock`` topology)."""

    def __init__(self, clients: list[Any], names: list[str], ttl_ms: int) -> None:
        self.counters = Counters(redlock.COUNTERS)
        self.locks = {n: redlock.Redlock(clients, n, ttl_ms=ttl_ms, counters=self.counters) for n in names}

    async def acquire(self, lock: str, timeout_s: float) -> Grant:
        return Grant(lock, None, await self.locks[lock].acquire(timeout_s))

    async def release(self, grant: Grant) -> bool:
        """True when a majority still held our token (False: the validity had run out)."""
        assert isinstance(grant.lease, redlock.RedlockLease)
        lk = self.locks[grant.lock]
        return await lk.release(grant.lease) >= lk.quorum

    async def fence_counters(self) -> dict[str, int] | None:
        return None  # Redlock has no fencing token


def make_locks(variant: str, client: Any, names: list[str], ttl_ms: int) -> Locks:
    """The variant's locks; ``redlock`` needs the redlock topology's list of node clients."""
    if variant not in VARIANTS:
        raise UnknownNameError("lock variant", variant, VARIANTS)
    if (variant == "redlock") != isinstance(client, list):
        raise LabError(f"lock variant {variant!r} needs the "
                       + ("redlock topology (independent nodes)" if variant == "redlock" else
                          "single, sentinel or cluster topology"), "choose it with --topology")
    if variant == "redlock":
        return RedlockLocks(client, names, ttl_ms)
    return NaiveLocks(client, names, ttl_ms) if variant == "naive" else TokenLocks(client, names, ttl_ms)


async def close_clients(client: Any) -> None:
    """Close the scenario's client (the redlock topology's: one per node)."""
    if isinstance(client, list):
        await redlock.aclose_all(client)
    else:
        await client.aclose()
