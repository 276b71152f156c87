"""Per-user rate limiting: four algorithms, each one atomic Lua script on one key.

Every check is a single script on a single key (``rl:{user}:<algo>``), so it
is atomic and cluster-safe; the ``{user}`` hash tag keeps all of a user's keys
in one slot should a check ever need two. Time comes from the Redis server
(``redis.call('TIME')``; allowed because Redis 7 replicates scripts by their
effects), so client clock skew does not matter. Denied requests are never
recorded, so a client hammering while blocked does not extend its own block.
Failure handling is ``FailurePolicy``: only availability failures (connection,
timeout, READONLY, cluster down, loading) trigger it; a server rejection (a
script error such as WRONGTYPE) is a bug and raises. Limits and windows are
checked when the algorithm is built. See patterns/README.md.
"""

from __future__ import annotations

import enum
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from patterns.common import Counters, LuaScript, RetryPolicy, tag_for
from patterns.failures import REDIS_FAILURES, is_transient

COUNTERS = ("allowed", "denied", "fail_open", "fail_closed", "local_allowed", "local_denied")

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
"""

# KEYS[1]; ARGV limit, window_ms, cost -> {allowed, count, pttl_ms}
_FIXED = """
local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if cur + cost > limit then return {0, cur, ttl} end
local n = redis.call('INCRBY', KEYS[1], cost)
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], window); ttl = window end
return {1, n, ttl}
"""

# KEYS[1]; ARGV limit, window_ms, cost, unique id -> {allowed, count, retry_ms}
_SLIDING_LOG = _NOW_MS + """
now = math.floor(now)
local limit, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count + cost <= limit then
  for i = 1, cost do redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. i) end
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, count + cost, 0}
end
if cost > limit then return {0, count, -1} end
local nth = redis.call('ZRANGE', KEYS[1], count + cost - limit - 1, count + cost - limit - 1, 'WITHSCORES')
return {0, count, tonumber(nth[2]) + window - now}
"""

# KEYS[1] hash {window index -> count}; ARGV limit, window_ms, cost
# -> {allowed, current, previous, elapsed_ms}
_SLIDING_COUNTER = _NOW_MS + """
now = math.floor(now)
local limit, w, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local idx = math.floor(now / w)
local elapsed = now - idx * w
local cur = tonumber(redis.call('HGET', KEYS[1], string.format('%d', idx)) or '0')
local prev = tonumber(redis.call('HGET', KEYS[1], string.format('%d', idx - 1)) or '0')
local allowed = 0
if prev * (w - elapsed) / w + cur + cost <= limit then
  cur = redis.call('HINCRBY', KEYS[1], string.format('%d', idx), cost)
  allowed = 1
end
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if tonumber(f) < idx - 1 then redis.call('HDEL', KEYS[1], f) end
end
redis.call('PEXPIRE', KEYS[1], 2 * w)
return {allowed, cur, prev, elapsed}
"""

# KEYS[1] hash {tokens, ts_ms}; ARGV capacity, refill_per_s, cost -> {allowed, tokens, retry_ms}
_TOKEN_BUCKET = _NOW_MS + """
local cap, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]) / 1000, tonumber(ARGV[3])
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1]) or cap
local ts = tonumber(data[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local allowed, retry = 0, 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
elseif cost > cap then
  retry = -1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.3f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate) + 1000)
return {allowed, string.format('%.6f', tokens), string.format('%.3f', retry)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int  # requests still admissible now (0 when denied)
    retry_after_s: float  # 0 when allowed; math.inf when the cost can never fit
    source: str  # "redis" | "fail_open" | "fail_closed" | "local"


class FailurePolicy(enum.Enum):
    OPEN = "open"  # admit everything while Redis is failing (protects availability)
    CLOSED = "closed"  # deny everything (protects the backend; makes Redis a hard dependency)
    LOCAL = "local"  # per-process token bucket (each process admits its own share)


class Algorithm(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def script(self) -> str: ...

    def args(self, cost: int) -> list[Any]: ...

    def decide(self, reply: list[Any], cost: int) -> Decision: ...


def _retry_s(ms: float) -> float:
    return math.inf if ms < 0 else ms / 1000


def _positive(owner: str, **values: float) -> None:
    """Reject a non-positive limit/window/rate at construction: a zero refill makes the
    script's PEXPIRE fail on every call, which a failure policy would hide."""
    for name, value in values.items():
        if not value > 0 or math.isinf(value):
            raise ValueError(f"{owner}: {name} must be a positive finite number, got {value!r}")


class _Windowed:
    limit: int
    window_ms: int

    def __post_init__(self) -> None:
        _positive(type(self).__name__, limit=self.limit, window_ms=self.window_ms)


@dataclass(frozen=True)
class FixedWindow(_Windowed):
    """``limit`` per window of ``window_ms`` that starts at a user's first request
    (not aligned to the clock). Allows bursts of up to 2x ``limit`` across a
    window edge."""

    limit: int
    window_ms: int
    name: str = "fw"
    script: str = field(default=_FIXED, repr=False)

    def args(self, cost: int) -> list[Any]:
        return [self.limit, self.window_ms, cost]

    def decide(self, reply: list[Any], cost: int) -> Decision:
        allowed, count, ttl_ms = int(reply[0]), int(reply[1]), int(reply[2])
        if allowed:
            return Decision(True, max(0, self.limit - count), 0.0, "redis")
        retry = math.inf if cost > self.limit else max(0, ttl_ms) / 1000
        return Decision(False, 0, retry, "redis")


@dataclass(frozen=True)
class SlidingLog(_Windowed):
    """Exact: at most ``limit`` in any ``window_ms``. Memory O(limit) per user."""

    limit: int
    window_ms: int
    name: str = "log"
    script: str = field(default=_SLIDING_LOG, repr=False)

    def args(self, cost: int) -> list[Any]:
        return [self.limit, self.window_ms, cost, uuid.uuid4().hex]

    def decide(self, reply: list[Any], cost: int) -> Decision:
        allowed, count, retry_ms = int(reply[0]), int(reply[1]), int(reply[2])
        if allowed:
            return Decision(True, max(0, self.limit - count), 0.0, "redis")
        return Decision(False, 0, _retry_s(retry_ms), "redis")


def swc_estimate(prev: float, cur: float, elapsed_ms: float, window_ms: float) -> float:
    """Sliding-window-counter estimate: the previous window weighted by the share
    of it still inside the sliding window, plus the current window."""
    return prev * (window_ms - elapsed_ms) / window_ms + cur


def swc_retry_after_ms(prev: float, cur: float, elapsed_ms: float, window_ms: float, limit: int, cost: int) -> float:
    """Time until ``cost`` fits, assuming nothing else is admitted; -1 = never."""
    if cost > limit:
        return -1
    room = limit - cost - cur
    if room >= 0:  # fits later in this window, as the previous window decays
        if prev <= 0:
            return 0.0
        return max(0.0, (window_ms - elapsed_ms) - room * window_ms / prev)
    # next window: current becomes previous; need cur*(w-e')/w + cost <= limit
    e_next = window_ms - (limit - cost) * window_ms / cur
    return (window_ms - elapsed_ms) + max(0.0, e_next)


@dataclass(frozen=True)
class SlidingWindowCounter(_Windowed):
    """Approximate sliding window from two clock-aligned fixed windows; O(1) memory.
    Assumes requests were spread evenly over the previous window."""

    limit: int
    window_ms: int
    name: str = "swc"
    script: str = field(default=_SLIDING_COUNTER, repr=False)

    def args(self, cost: int) -> list[Any]:
        return [self.limit, self.window_ms, cost]

    def decide(self, reply: list[Any], cost: int) -> Decision:
        allowed, cur, prev, elapsed = (int(x) for x in reply)
        est = swc_estimate(prev, cur, elapsed, self.window_ms)
        if allowed:
            return Decision(True, max(0, math.floor(self.limit - est)), 0.0, "redis")
        retry_ms = swc_retry_after_ms(prev, cur, elapsed, self.window_ms, self.limit, cost)
        return Decision(False, 0, _retry_s(retry_ms), "redis")


@dataclass(frozen=True)
class TokenBucket:
    """Bursts up to ``capacity``, sustained ``refill_per_s``."""

    capacity: int
    refill_per_s: float
    name: str = "tb"
    script: str = field(default=_TOKEN_BUCKET, repr=False)

    def __post_init__(self) -> None:
        _positive("TokenBucket", capacity=self.capacity, refill_per_s=self.refill_per_s)

    def args(self, cost: int) -> list[Any]:
        return [self.capacity, self.refill_per_s, cost]

    def decide(self, reply: list[Any], cost: int) -> Decision:
        allowed, tokens, retry_ms = int(reply[0]), float(reply[1]), float(reply[2])
        if allowed:
            return Decision(True, math.floor(tokens), 0.0, "redis")
        return Decision(False, 0, _retry_s(retry_ms), "redis")


class LocalTokenBucket:
    """In-process per-user token buckets: the fallback when Redis is unavailable.

    Each process enforces its own bucket, so N processes admit up to N times the
    global limit: size it as ``global_limit / expected_processes`` if that
    matters more than availability. At most ``max_users`` buckets (LRU)."""

    def __init__(
        self,
        capacity: float,
        refill_per_s: float,
        max_users: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _positive("LocalTokenBucket", capacity=capacity, refill_per_s=refill_per_s, max_users=max_users)
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self.max_users = max_users
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # user -> (tokens, at_s)

    def check(self, user: str, cost: int = 1) -> Decision:
        now = self.clock()
        tokens, at = self._buckets.get(user, (self.capacity, now))
        tokens = min(self.capacity, tokens + max(0.0, now - at) * self.refill_per_s)
        if tokens >= cost:
            tokens -= cost
            decision = Decision(True, math.floor(tokens), 0.0, "local")
        elif cost > self.capacity:
            decision = Decision(False, 0, math.inf, "local")
        else:
            decision = Decision(False, 0, (cost - tokens) / self.refill_per_s, "local")
        self._buckets[user] = (tokens, now)
        self._buckets.move_to_end(user)
        while len(self._buckets) > self.max_users:
            self._buckets.popitem(last=False)
        return decision


class RateLimiter:
    """``await limiter.check(user)`` -> ``Decision``. One Redis round trip per check.

    The default retry policy is a single attempt: a limiter that waits for
    Redis adds its latency to every request, and a retried check after a
    timeout may count the request twice (under-admission, the safe side).
    Any user id works: braces are escaped into the key's hash tag."""

    def __init__(
        self,
        client: Any,
        algorithm: Algorithm,
        failure: FailurePolicy = FailurePolicy.OPEN,
        local: LocalTokenBucket | None = None,
        retry: RetryPolicy = RetryPolicy.none(),
        prefix: str = "rl",
    ) -> None:
        if failure is FailurePolicy.LOCAL and local is None:
            raise ValueError("FailurePolicy.LOCAL needs a LocalTokenBucket")
        self.client = client
        self.algorithm = algorithm
        self.failure = failure
        self.local = local
        self.retry = retry
        self.prefix = prefix
        self.counters = Counters(COUNTERS)
        self._script = LuaScript(client, algorithm.script)

    def key(self, user: str) -> str:
        return f"{self.prefix}:{tag_for(user)}:{self.algorithm.name}"

    async def check(self, user: str, cost: int = 1) -> Decision:
        if cost < 1:
            raise ValueError(f"cost must be >= 1, got {cost}")
        try:
            reply = await self.retry.run(
                lambda: self._script(keys=[self.key(user)], args=self.algorithm.args(cost)), self.counters
            )
        except REDIS_FAILURES as exc:
            if not is_transient(exc):
                raise  # the server rejected the script: a bug, not an outage (counted by type)
            return self._on_failure(user, cost)  # availability failure, already counted by type
        decision = self.algorithm.decide(reply, cost)
        self.counters.inc("allowed" if decision.allowed else "denied")
        return decision

    def _on_failure(self, user: str, cost: int) -> Decision:
        if self.failure is FailurePolicy.OPEN:
            self.counters.inc("fail_open")
            return Decision(True, 0, 0.0, "fail_open")
        if self.failure is FailurePolicy.CLOSED:
            self.counters.inc("fail_closed")
            return Decision(False, 0, 1.0, "fail_closed")
        assert self.local is not None
        decision = self.local.check(user, cost)
        self.counters.inc("local_allowed" if decision.allowed else "local_denied")
        return decision
