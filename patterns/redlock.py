"""Redlock: one lock over N independent Redis primaries (the ``redlock`` topology).

The algorithm of the Redis documentation ("Distributed Locks with Redis"):
1. take the time, 2. try ``SET key token NX PX ttl`` on every node with a short
per-node timeout, 3. the lock is held if a majority (N/2 + 1) granted it and
``validity = ttl - elapsed - drift`` (``drift = ttl * clock_drift_factor + 2 ms``)
is still positive, 4. otherwise release on every node (also those that seemed
to refuse: their reply may have been lost) and retry after a random delay.
Release runs on every node. Here the nodes are tried concurrently, not one
after the other, so ``elapsed`` is about one round trip.

What it does NOT give you (Kleppmann, "How to do distributed locking", 2016): no
fencing token, so a holder paused past its validity (GC, VM stall, SIGSTOP) still
writes after the next holder got the lock; and safety rests on the nodes' clocks
advancing at the rate assumed by ``clock_drift_factor`` (a node whose clock jumps
forward expires the key early). Persistence matters too: a node restarted without
its data forgets the grants it gave. See patterns/README.md ("Redlock").
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from patterns.common import Counters, LuaScript, as_str
from patterns.failures import REDIS_FAILURES
from patterns.lock import LockNotOwned, LockTimeout, LockUnavailable

COUNTERS = (
    "acquired",
    "no_quorum",  # an attempt got fewer than a majority of grants (busy, or nodes failing)
    "expired_on_arrival",  # a majority granted, but the validity was already used up
    "released",
    "release_not_owned",
    "extended",
    "extend_failed",
    "node_errors",  # per node and call: unreachable, timed out, rejected
    "timeouts",
)

# KEYS[1] lock; ARGV token, ttl_ms -> 1 granted (also when the token already holds it), 0 held by another
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS[1] lock; ARGV token -> 1 deleted, 0 not ours
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS[1] lock; ARGV token, ttl_ms -> 1 extended, 0 not ours
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


@dataclass
class RedlockLease:
    """A (probable) Redlock acquisition. ``valid_until_monotonic_s`` is the request's
    start + validity (ttl - elapsed - drift), on this process's monotonic clock."""

    name: str
    token: str
    ttl_ms: int
    granted: int  # nodes that granted it
    valid_until_monotonic_s: float

    def remaining_s(self) -> float:
        return self.valid_until_monotonic_s - time.monotonic()

    def is_valid(self) -> bool:
        return self.remaining_s() > 0


@dataclass(frozen=True)
class _Round:
    """The replies of one call on every node: True/False per node, or the exception."""

    replies: list[bool | BaseException]

    @property
    def yes(self) -> int:
        return sum(r is True for r in self.replies)

    @property
    def errors(self) -> int:
        return sum(isinstance(r, BaseException) for r in self.replies)


class Redlock:
    """A lock over ``clients``, one per independent Redis primary (``topo.client()``
    of the ``redlock`` topology). ``instance_timeout_ms`` bounds each node's reply,
    so a dead or slow node costs at most that; keep it well below ``ttl_ms``."""

    def __init__(
        self,
        clients: Sequence[Any],
        name: str,
        ttl_ms: int = 10_000,
        instance_timeout_ms: int = 50,
        clock_drift_factor: float = 0.01,
        retry_delay_ms: int = 200,
        counters: Counters | None = None,
    ) -> None:
        if len(clients) < 1:
            raise ValueError("Redlock needs at least one client (the Redis docs use 5 independent nodes)")
        if ttl_ms <= 0 or instance_timeout_ms <= 0 or retry_delay_ms <= 0 or not 0 <= clock_drift_factor < 1:
            raise ValueError(f"need ttl_ms, instance_timeout_ms, retry_delay_ms > 0 and 0 <= clock_drift_factor < 1; "
                             f"got {ttl_ms}, {instance_timeout_ms}, {retry_delay_ms}, {clock_drift_factor}")
        self.clients = list(clients)
        self.name = name
        self.key = f"redlock:{name}"
        self.ttl_ms = ttl_ms
        self.instance_timeout_s = instance_timeout_ms / 1000
        self.clock_drift_factor = clock_drift_factor
        self.retry_delay_s = retry_delay_ms / 1000
        self.quorum = len(self.clients) // 2 + 1
        self.counters = counters or Counters(COUNTERS)
        self._acquire = [LuaScript(c, _ACQUIRE) for c in self.clients]
        self._release = [LuaScript(c, _RELEASE) for c in self.clients]
        self._extend = [LuaScript(c, _EXTEND) for c in self.clients]

    # -- one call on every node ------------------------------------------------------

    async def _on_all(self, scripts: list[Any], args: list[Any]) -> _Round:
        async def one(script: Any) -> bool | BaseException:
            try:
                async with asyncio.timeout(self.instance_timeout_s):
                    return bool(await script(keys=[self.key], args=args))
            except REDIS_FAILURES as exc:  # unreachable, timed out, or rejected: not a grant
                self.counters.error(exc)
                self.counters.inc("node_errors")
                return exc

        return _Round(list(await asyncio.gather(*(one(s) for s in scripts))))

    # -- acquire ---------------------------------------------------------------------

    async def try_acquire(self, ttl_ms: int | None = None, token: str | None = None) -> RedlockLease | None:
        """One attempt on every node. None when no majority granted it in time (the
        grants it did get are released). ``LockUnavailable`` when so many nodes failed
        that no majority could have answered."""
        lease, rnd = await self._attempt(ttl_ms or self.ttl_ms, token or secrets.token_hex(16))
        if lease is None and len(self.clients) - rnd.errors < self.quorum:
            raise LockUnavailable(f"{self.key}: {rnd.errors} of {len(self.clients)} nodes failed; "
                                  f"a majority ({self.quorum}) cannot answer") from _first_error(rnd)
        return lease

    async def _attempt(self, ttl_ms: int, token: str) -> tuple[RedlockLease | None, _Round]:
        started = time.monotonic()
        rnd = await self._on_all(self._acquire, [token, ttl_ms])
        elapsed_s = time.monotonic() - started
        drift_s = ttl_ms / 1000 * self.clock_drift_factor + 0.002
        validity_s = ttl_ms / 1000 - elapsed_s - drift_s
        if rnd.yes >= self.quorum and validity_s > 0:
            self.counters.inc("acquired")
            return RedlockLease(self.name, token, ttl_ms, rnd.yes, started + validity_s), rnd
        self.counters.inc("no_quorum" if rnd.yes < self.quorum else "expired_on_arrival")
        await self._on_all(self._release, [token])  # every node: a grant's reply may have been lost
        return None, rnd

    async def acquire(self, timeout_s: float, ttl_ms: int | None = None) -> RedlockLease:
        """Retry after a random delay (``uniform(0, retry_delay_ms)``) until acquired or
        ``timeout_s`` passes: ``LockTimeout`` (held by others), or ``LockUnavailable``
        (the last attempt could not reach a majority). No delay ends past the deadline."""
        deadline = time.monotonic() + timeout_s
        token = secrets.token_hex(16)
        ttl_ms = ttl_ms or self.ttl_ms
        while True:
            lease, rnd = await self._attempt(ttl_ms, token)
            if lease is not None:
                return lease
            delay = random.uniform(0, self.retry_delay_s)
            if time.monotonic() + delay + self.instance_timeout_s > deadline:
                break
            await asyncio.sleep(delay)
        if len(self.clients) - rnd.errors < self.quorum:
            raise LockUnavailable(f"{self.key}: {rnd.errors} of {len(self.clients)} nodes failed at the deadline; "
                                  f"a majority ({self.quorum}) cannot answer") from _first_error(rnd)
        self.counters.inc("timeouts")
        raise LockTimeout(f"{self.key} not acquired on a majority ({self.quorum}) within {timeout_s}s")

    # -- release, extend -------------------------------------------------------------

    async def release(self, lease: RedlockLease) -> int:
        """Delete the lock on every node that still holds our token; returns how many
        did. Fewer than a majority: the lock had expired (and maybe been taken)."""
        n = (await self._on_all(self._release, [lease.token])).yes
        self.counters.inc("released" if n >= self.quorum else "release_not_owned")
        return n

    async def extend(self, lease: RedlockLease, ttl_ms: int | None = None) -> bool:
        """Reset the TTL on the nodes that still hold our token; True (and a new local
        deadline) only if a majority did within the new validity."""
        ttl_ms = ttl_ms or lease.ttl_ms
        started = time.monotonic()
        rnd = await self._on_all(self._extend, [lease.token, ttl_ms])
        validity_s = ttl_ms / 1000 - (time.monotonic() - started) - (ttl_ms / 1000 * self.clock_drift_factor + 0.002)
        if rnd.yes >= self.quorum and validity_s > 0:
            self.counters.inc("extended")
            lease.valid_until_monotonic_s = started + validity_s
            lease.granted = rnd.yes
            return True
        self.counters.inc("extend_failed")
        return False

    @contextlib.asynccontextmanager
    async def hold(self, timeout_s: float) -> AsyncIterator[RedlockLease]:
        """``async with redlock.hold(5) as lease:`` acquire, release; ``LockNotOwned`` on
        exit when the validity ran out or a majority no longer held our token (the
        section overran). If the body raised, its exception wins. Check
        ``lease.is_valid()`` before each side effect: there is no fencing token."""
        lease = await self.acquire(timeout_s)
        try:
            yield lease
        except BaseException:
            with contextlib.suppress(*REDIS_FAILURES):
                await self.release(lease)
            raise
        overran = not lease.is_valid()
        released = await self.release(lease)
        if overran or released < self.quorum:
            raise LockNotOwned(f"{self.key}: validity {'ran out' if overran else 'intact'}, "
                               f"released on {released} of {len(self.clients)} nodes (majority {self.quorum})")

    async def holders(self) -> list[str | None]:
        """The token each node holds now (None: none or unreachable), for inspection."""

        async def get(client: Any) -> str | None:
            try:
                async with asyncio.timeout(self.instance_timeout_s):
                    return as_str(await client.get(self.key))
            except REDIS_FAILURES:
                return None

        return list(await asyncio.gather(*(get(c) for c in self.clients)))


def _first_error(rnd: _Round) -> BaseException | None:
    return next((r for r in rnd.replies if isinstance(r, BaseException)), None)


async def aclose_all(clients: Sequence[Any]) -> None:
    """Close every client of a Redlock."""
    await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
