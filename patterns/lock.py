"""Distributed lock on one Redis primary: SET NX PX with a random token, a
fencing token, token-checked release/extend, a renewal watchdog, and the
``FencedResource`` that makes the fencing token worth having.

Keys (one hash tag, so one cluster slot): ``lock:{name}`` holds
``"<token>:<fence>"``, ``lock:{name}:fence`` is the fence counter. It only grows
on one primary; a failover can lose its last increments, so a fence may be
handed out twice unless ``fence_replicas`` confirms it (WAIT) before use.
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

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, retry_if_result, wait_random_exponential

from patterns.common import Counters, LuaScript, RetryPolicy, tagged
from patterns.failures import REDIS_FAILURES, classify, is_transient

COUNTERS = (
    "acquired",
    "busy",
    "released",
    "release_not_owned",
    "extended",
    "extend_failed",
    "lost",
    "timeouts",
    "release_failed",  # Redis failed at release: the lock frees itself at its TTL
    "not_replicated",  # granted, but fewer than fence_replicas replicas confirmed: released, refused
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

# KEYS[1] lock; ARGV[1] token. 1 = deleted (the lock held a grant of this token, any fence), 0 = not.
_RELEASE_TOKEN = """
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. ':' then
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


class LockNotOwned(LockError):
    """``hold()`` ended but the lock was no longer ours (it expired, maybe another
    client took it): part of the critical section ran unprotected. As redis-py's
    ``LockNotOwnedError``."""


class LockNotReplicated(LockError):
    """Granted, but fewer than ``fence_replicas`` replicas confirmed the grant within
    ``fence_wait_ms`` (WAIT): a failover could lose it and hand out its fence again.
    The grant was released."""


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
    acquisition gets its own random token (kept across the retries of one acquire).

    ``fence_replicas`` > 0: the acquire script and ``WAIT fence_replicas fence_wait_ms``
    go on one connection; a grant that fewer replicas confirmed is released and
    refused (``LockNotReplicated``), so the fence a holder uses has reached that many
    replicas. On a Cluster both go to the node serving the key."""

    def __init__(
        self,
        client: Any,
        name: str,
        ttl_ms: int = 10_000,
        retry: RetryPolicy = RetryPolicy(),
        clock_drift_ratio: float = 0.01,
        counters: Counters | None = None,
        fence_replicas: int = 0,
        fence_wait_ms: int = 100,
    ) -> None:
        if ttl_ms <= 0 or fence_replicas < 0 or fence_wait_ms <= 0:
            raise ValueError(f"need ttl_ms > 0, fence_replicas >= 0, fence_wait_ms > 0; got {ttl_ms}, "
                             f"{fence_replicas}, {fence_wait_ms}")
        self.client = client
        self.name = name
        self.ttl_ms = ttl_ms
        self.retry = retry
        self.clock_drift_ratio = clock_drift_ratio
        self.counters = counters or Counters(COUNTERS)
        self.fence_replicas = fence_replicas
        self.fence_wait_ms = fence_wait_ms
        self.key = f"lock:{tagged(name)}"
        self.fence_key = f"lock:{tagged(name)}:fence"
        self._acquire = LuaScript(client, _ACQUIRE)
        self._release = LuaScript(client, _RELEASE)
        self._release_token = LuaScript(client, _RELEASE_TOKEN)
        self._extend = LuaScript(client, _EXTEND)
        self._cleanups: set[asyncio.Task[None]] = set()

    async def _call(self, op: Any) -> Any:
        try:
            return await self.retry.run(op, self.counters)
        except REDIS_FAILURES as exc:
            raise LockUnavailable(f"{self.key}: {exc!r}") from exc

    async def try_acquire(self, ttl_ms: int | None = None, token: str | None = None) -> Lease | None:
        """One attempt (with the retry policy for transient errors). None when held by
        another. Passing the ``token`` of an earlier attempt whose reply was lost
        returns that attempt's lease if it did take the lock."""
        ttl_ms = ttl_ms or self.ttl_ms
        token = token or secrets.token_hex(16)
        sent_at = time.monotonic()
        if self.fence_replicas:
            ok, n = await self._call(lambda: self._acquire_confirmed(token, ttl_ms))
        else:
            ok, n = await self._call(lambda: self._acquire(keys=[self.key, self.fence_key], args=[token, ttl_ms]))
        if not ok:
            self.counters.inc("busy")
            return None
        self.counters.inc("acquired")
        valid_s = ttl_ms / 1000 * (1 - self.clock_drift_ratio)
        return Lease(self.name, token, int(n), ttl_ms, sent_at + valid_s)

    async def _acquire_confirmed(self, token: str, ttl_ms: int) -> tuple[int, int]:
        """The acquire script and WAIT on one connection (a pipeline without MULTI), so
        WAIT counts the replicas that have *this* grant; refuses an unconfirmed grant."""
        pipe = self.client.pipeline(transaction=False)
        pipe.eval(_ACQUIRE, 2, self.key, self.fence_key, token, ttl_ms)
        wait_kwargs: dict[str, Any] = {}
        if hasattr(self.client, "nodes_manager"):  # Cluster: WAIT has no key; send it to the key's node
            wait_kwargs["target_nodes"] = self.client.get_node_from_key(self.key)
        pipe.execute_command("WAIT", self.fence_replicas, self.fence_wait_ms, **wait_kwargs)
        (ok, n), confirmed = await pipe.execute()
        if ok and int(confirmed) < self.fence_replicas:
            self.counters.inc("not_replicated")
            with contextlib.suppress(*REDIS_FAILURES):  # best effort: the TTL frees it otherwise
                await self._release(keys=[self.key], args=[f"{token}:{int(n)}"])
            raise LockNotReplicated(
                f"{self.key}: granted fence {int(n)} but confirmed by {int(confirmed)} of {self.fence_replicas} "
                f"replica(s) within {self.fence_wait_ms} ms; released. A failover could hand this fence out again")
        return int(ok), int(n)

    async def acquire(self, timeout_s: float, ttl_ms: int | None = None, base_wait_s: float = 0.005,
                      max_wait_s: float = 0.2) -> Lease:
        """Block until acquired or ``timeout_s`` passes (``LockTimeout``, or
        ``LockUnavailable`` when Redis kept failing). Waits are jittered exponential
        so contenders do not retry in lockstep; no wait or attempt runs past the
        deadline, and no wait is started after which less than twice the slowest
        attempt so far would be left. A lock an earlier attempt found busy times out
        as busy (``LockTimeout``) even if the last attempt is cut at the deadline;
        ``LockUnavailable`` means the last attempt failed (a Redis error, or no reply
        to any attempt before the deadline). Every attempt uses one token, so an
        attempt whose reply was lost but which took the lock is found by the next
        one; if the outcome of an attempt stayed unknown at the deadline, a
        background task releases whatever that token may hold (best effort), so the
        caller is not kept waiting."""
        deadline = time.monotonic() + timeout_s
        token = secrets.token_hex(16)
        uncertain = False  # an attempt may have taken the lock without our knowing
        slowest = 0.0  # s, the longest attempt so far
        busy = False  # Redis answered an earlier attempt: the lock was held by another

        async def attempt() -> Lease | None:
            nonlocal uncertain, slowest, busy
            started = time.monotonic()
            try:
                async with asyncio.timeout(max(0.0, deadline - started)):
                    lease = await self.try_acquire(ttl_ms, token)
                busy = busy or lease is None
                return lease
            except TimeoutError as exc:  # cut at the deadline: the script may have run
                uncertain = True
                if busy:  # Redis answered before: still busy as far as anyone knows (a timeout, not an outage)
                    return None
                raise LockUnavailable(f"{self.key}: no reply before the deadline") from exc
            except LockUnavailable as exc:
                uncertain = uncertain or (exc.__cause__ is not None and classify(exc.__cause__).may_have_executed)
                raise
            finally:
                slowest = max(slowest, time.monotonic() - started)

        def out_of_time(state: RetryCallState) -> bool:
            """Stop rather than wait when less than twice the slowest attempt so far would be left: an
            attempt cut at the deadline learns nothing and leaves a grant it may have taken to be
            released in the background."""
            return time.monotonic() + (state.upcoming_sleep or 0.0) >= deadline - 2 * slowest

        retrying = AsyncRetrying(
            retry=retry_if_result(lambda lease: lease is None) | retry_if_exception(_transient_lock_error),
            wait=wait_random_exponential(multiplier=base_wait_s, max=max_wait_s),
            stop=out_of_time,
            reraise=True,
            # at the deadline: re-raise the last Redis error, or return None (still busy)
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        try:
            lease: Lease | None = await retrying(attempt)
        except LockUnavailable:
            if uncertain:
                self._forget(token)
            raise
        if lease is None:
            self.counters.inc("timeouts")
            if uncertain:
                self._forget(token)
            raise LockTimeout(f"{self.key} not acquired within {timeout_s}s")
        return lease

    def _forget(self, token: str) -> None:
        """In the background: release whatever grant ``token`` may hold (an attempt
        whose reply never came), within ``ttl_ms`` at most."""

        async def release() -> None:
            with contextlib.suppress(*REDIS_FAILURES):
                async with asyncio.timeout(self.ttl_ms / 1000):
                    await self.retry.run(lambda: self._release_token(keys=[self.key], args=[token]), self.counters)

        task = asyncio.create_task(release(), name=f"forget-{self.key}")
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def release(self, lease: Lease) -> bool:
        """Delete the lock if it still holds our token. False = it had expired (and
        maybe been taken): whatever we did after expiry was unprotected."""
        deleted = await self._call(lambda: self._release(keys=[self.key], args=[lease.value]))
        self.counters.inc("released" if deleted else "release_not_owned")
        return bool(deleted)

    async def extend(self, lease: Lease, ttl_ms: int | None = None) -> bool:
        """Reset the TTL if we still hold the lock; updates the local deadline."""
        ttl_ms = ttl_ms or lease.ttl_ms
        sent_at = time.monotonic()
        ok = await self._call(lambda: self._extend(keys=[self.key], args=[lease.value, ttl_ms]))
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
        ``lease.fence`` and ``lease.token`` to the storage you write to.

        On exit, ``LockNotOwned`` is raised when the lock was no longer ours (the
        release found another value or none, or the lease's local deadline had passed
        or the watchdog had flagged it lost): the section overran and ran partly
        unprotected. When Redis fails at release while the lease is still valid, the
        section was protected and the lock expires at its TTL: nothing is raised, it
        is counted (``release_failed``). If the body raised, its exception wins."""
        lease = await self.acquire(timeout_s)
        task = asyncio.create_task(self._watchdog(lease)) if watchdog else None
        try:
            yield lease
        except BaseException:
            await self._finish(lease, task, raise_on_loss=False)
            raise
        await self._finish(lease, task, raise_on_loss=True)

    async def _finish(self, lease: Lease, watchdog: asyncio.Task[None] | None, raise_on_loss: bool) -> None:
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        overran = not lease.is_valid()
        try:
            released: bool | None = await self.release(lease)
        except LockUnavailable:
            self.counters.inc("release_failed")
            released = None
        if raise_on_loss and (released is False or overran):
            raise LockNotOwned(
                f"{self.key}: the lock was no longer held when the section ended "
                f"({'released by someone else or expired' if released is False else 'lease expired locally'}); "
                f"fence {lease.fence}")

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
    """Storage that keeps the (fence, token) of the last accepted write and accepts a
    write whose fence is greater than the highest seen, or equal to it from the same
    token (the same holder writing again). An equal fence from another token means
    the fence was handed out twice (a failover lost its INCR): rejected and counted
    in ``fence_reused``. In-memory, guarded by its own asyncio lock; stands in for a
    database row with ``fence`` and ``token`` columns
    (``UPDATE ... WHERE fence < :f OR (fence = :f AND token = :t)``)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.highest_fence = 0
        self.highest_token: str | None = None
        self.data: dict[str, Any] = {}
        self.accepted = 0
        self.rejected = 0  # every refused write, fence_reused included
        self.fence_reused = 0

    async def write(self, key: str, value: Any, fence: int, token: str) -> bool:
        async with self._lock:
            if fence < self.highest_fence:
                self.rejected += 1
                return False
            if fence == self.highest_fence and self.highest_token is not None and token != self.highest_token:
                self.rejected += 1
                self.fence_reused += 1
                return False
            self.highest_fence, self.highest_token = fence, token
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
