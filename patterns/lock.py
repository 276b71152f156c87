"""Distributed lock on one Redis primary: SET NX PX with a random token, a
fencing token, token-checked release/extend, a renewal watchdog, and the
``FencedResource`` that makes the fencing token worth having.

Keys (one hash tag, so one cluster slot): ``lock:{name}`` holds
``"<token>:<fence>"``, ``lock:{name}:fence`` is the monotonic fence counter.
A lease is only ever *probably* held: see patterns/README.md ("Lock").
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, retry_if_result, stop_after_delay, wait_random_exponential

from patterns.common import REDIS_FAILURES, Counters, RetryPolicy, is_transient, tagged

COUNTERS = (
    "acquired",
    "busy",
    "released",
    "release_not_owned",
    "extended",
    "extend_failed",
    "lost",
    "timeouts",
)

# KEYS[1] lock, KEYS[2] fence counter; ARGV[1] token, ARGV[2] ttl_ms.
# Returns {1, fence} when acquired, {0, pttl_ms} when held by someone else.
# Idempotent: a retry after a lost reply finds our own token and keeps it.
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local prefix = ARGV[1] .. ':'
  if string.sub(cur, 1, #prefix) == prefix then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, tonumber(string.sub(cur, #prefix + 1))}
  end
  return {0, redis.call('PTTL', KEYS[1])}
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. fence, 'PX', ARGV[2])
return {1, fence}
"""

# KEYS[1] lock; ARGV[1] "<token>:<fence>". 1 = deleted, 0 = not ours (expired or taken).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS[1] lock; ARGV[1] "<token>:<fence>", ARGV[2] ttl_ms. 1 = extended, 0 = not ours.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class LockError(Exception):
    """Base class for lock failures."""


class LockTimeout(LockError):
    """``acquire`` gave up at its deadline while another holder kept the lock."""


class LockUnavailable(LockError):
    """Redis failed (after retries) during acquire/release/extend; ``__cause__`` is the Redis error."""


@dataclass
class Lease:
    """Proof of a (probable) acquisition. ``valid_until_monotonic_s`` is a
    conservative local deadline: the request's *send* time + ttl - drift."""

    name: str
    token: str
    fence: int
    ttl_ms: int
    valid_until_monotonic_s: float
    lost: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def value(self) -> str:
        return f"{self.token}:{self.fence}"

    def remaining_s(self) -> float:
        return self.valid_until_monotonic_s - time.monotonic()

    def is_valid(self) -> bool:
        return not self.lost.is_set() and self.remaining_s() > 0


class DistributedLock:
    """A named lock. Safe to share one instance between coroutines: every
    acquisition gets its own random token."""

    def __init__(
        self,
        client: Any,
        name: str,
        ttl_ms: int = 10_000,
        retry: RetryPolicy = RetryPolicy(),
        clock_drift_ratio: float = 0.01,
        counters: Counters | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.ttl_ms = ttl_ms
        self.retry = retry
        self.clock_drift_ratio = clock_drift_ratio
        self.counters = counters or Counters(COUNTERS)
        self.key = f"lock:{tagged(name)}"
        self.fence_key = f"lock:{tagged(name)}:fence"
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._extend = client.register_script(_EXTEND)

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.retry.run(lambda: script(keys=keys, args=args), self.counters)
        except REDIS_FAILURES as exc:
            raise LockUnavailable(f"{self.key}: {exc!r}") from exc

    async def try_acquire(self, ttl_ms: int | None = None) -> Lease | None:
        """One attempt (with the retry policy for transient errors). None when held by another."""
        ttl_ms = ttl_ms or self.ttl_ms
        token = secrets.token_hex(16)
        sent_at = time.monotonic()
        ok, n = await self._call(self._acquire, [self.key, self.fence_key], [token, ttl_ms])
        if not ok:
            self.counters.inc("busy")
            return None
        self.counters.inc("acquired")
        valid_s = ttl_ms / 1000 * (1 - self.clock_drift_ratio)
        return Lease(self.name, token, int(n), ttl_ms, sent_at + valid_s)

    async def acquire(self, timeout_s: float, ttl_ms: int | None = None, base_wait_s: float = 0.005, max_wait_s: float = 0.2) -> Lease:
        """Block until acquired or ``timeout_s`` passes (``LockTimeout``).
        Waits are jittered exponential so contenders do not retry in lockstep;
        transient Redis errors are retried until the same deadline."""
        retrying = AsyncRetrying(
            retry=retry_if_result(lambda lease: lease is None) | retry_if_exception(_transient_lock_error),
            wait=wait_random_exponential(multiplier=base_wait_s, max=max_wait_s),
            stop=stop_after_delay(timeout_s),
            reraise=True,
            # at the deadline: re-raise the last Redis error, or return None (still busy)
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        lease: Lease | None = await retrying(self.try_acquire, ttl_ms)
        if lease is None:
            self.counters.inc("timeouts")
            raise LockTimeout(f"{self.key} not acquired within {timeout_s}s")
        return lease

    async def release(self, lease: Lease) -> bool:
        """Delete the lock if it still holds our token. False = it had expired (and
        maybe been taken): whatever we did after expiry was unprotected."""
        deleted = await self._call(self._release, [self.key], [lease.value])
        self.counters.inc("released" if deleted else "release_not_owned")
        return bool(deleted)

    async def extend(self, lease: Lease, ttl_ms: int | None = None) -> bool:
        """Reset the TTL if we still hold the lock; updates the local deadline."""
        ttl_ms = ttl_ms or lease.ttl_ms
        sent_at = time.monotonic()
        ok = await self._call(self._extend, [self.key], [lease.value, ttl_ms])
        if ok:
            self.counters.inc("extended")
            lease.valid_until_monotonic_s = sent_at + ttl_ms / 1000 * (1 - self.clock_drift_ratio)
        else:
            self.counters.inc("extend_failed")
        return bool(ok)

    @contextlib.asynccontextmanager
    async def hold(self, timeout_s: float, watchdog: bool = True) -> AsyncIterator[Lease]:
        """``async with lock.hold(5) as lease:`` acquire, optionally renew, release.
        Check ``lease.is_valid()`` (or ``lease.lost``) before side effects, and pass
        ``lease.fence`` to the storage you write to."""
        lease = await self.acquire(timeout_s)
        task = asyncio.create_task(self._watchdog(lease)) if watchdog else None
        try:
            yield lease
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(LockUnavailable):  # counted; the TTL frees it anyway
                await self.release(lease)

    async def _watchdog(self, lease: Lease) -> None:
        """Extend every ttl/3; on a refusal, or when Redis errors outlast the local
        deadline, set ``lease.lost`` and stop."""
        interval_s = lease.ttl_ms / 3000
        while True:
            await asyncio.sleep(interval_s)
            try:
                if await self.extend(lease):
                    continue
            except LockUnavailable:
                if lease.remaining_s() > 0:
                    continue  # still inside the lease; try again next tick
            lease.lost.set()
            self.counters.inc("lost")
            return


def _transient_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, LockUnavailable) and exc.__cause__ is not None and is_transient(exc.__cause__)


class FencedResource:
    """Storage that accepts a write only if its fencing token is >= the highest
    token seen (equal = the same holder writing again). In-memory, guarded by
    its own asyncio lock; stands in for a database row with a ``fence`` column
    (``UPDATE ... WHERE fence <= :token``)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.highest_fence = 0
        self.data: dict[str, Any] = {}
        self.accepted = 0
        self.rejected = 0

    async def write(self, key: str, value: Any, fence: int) -> bool:
        async with self._lock:
            if fence < self.highest_fence:
                self.rejected += 1
                return False
            self.highest_fence = fence
            self.data[key] = value
            self.accepted += 1
            return True


class NaiveIncrLock:
    """BASELINE ONLY — the seed project's lock, kept to show what goes wrong.

    ``INCR`` then ``EXPIRE`` as two commands, no token, no fencing:
    a crash (or a timeout) between the two leaves a lock that never expires;
    ``release`` is a bare DEL that frees whoever holds the lock now, including
    another client after our TTL expired; a paused holder has no way to notice
    it lost the lock and storage cannot reject it.
    """

    def __init__(self, client: Any, name: str, ttl_s: int = 10) -> None:
        self.client = client
        self.key = f"naivelock:{tagged(name)}"
        self.ttl_s = ttl_s

    async def try_acquire(self) -> bool:
        if await self.client.incr(self.key) == 1:
            await self.client.expire(self.key, self.ttl_s)  # not atomic with INCR: the bug
            return True
        return False

    async def release(self) -> None:
        await self.client.delete(self.key)  # deletes anyone's lock: the other bug
