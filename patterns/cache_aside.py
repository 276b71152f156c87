"""Cache-aside over the SQLite products database, with stampede protection and fallback.

Read: near cache (optional, tiny TTL) -> Redis GET -> on miss, one database
query per key per process (single flight) -> fill with TTL + jitter.
Write: update the database (which increments the row's revision), then
invalidate: replace the key by a tombstone carrying that revision (never
write-through). Fills and tombstones are scripts where the newest revision
wins, so a fill of a row read before a write cannot land after the write's
invalidation, in any process. In-process, a read issued after ``update_price``
returned never sees an older revision (read-your-writes).
Stampede: single flight per key in process, and XFetch probabilistic early
refresh (Vattani et al., "Optimal Probabilistic Cache Stampede Prevention").
Failure: see ``FallbackMode`` and patterns/README.md.
"""

from __future__ import annotations

import asyncio
import enum
import json
import math
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from patterns.breaker import AsyncBreaker, CircuitBreakerError, StateListener
from patterns.common import Counters, LuaScript, RetryPolicy, jittered_ttl_ms
from patterns.failures import REDIS_FAILURES
from patterns.products_db import Product, ProductsDB

T = TypeVar("T")

_INVALIDATE_FAILURES: tuple[type[BaseException], ...] = (CircuitBreakerError, *REDIS_FAILURES)

COUNTERS = (
    "hits",
    "misses",
    "near_hits",
    "db_queries",
    "fallbacks",
    "breaker_rejections",
    "early_refreshes",
    "single_flight_joins",
    "fill_failures",
    "fills_refused",  # a newer revision (or its tombstone) was already in Redis: our older row not cached
    "stale_rejected",  # a cached copy older than a write this process committed: not served, reloaded
    "invalidation_failures",
)

# Newest revision wins. Values are JSON {"r": revision, ...}; a tombstone is {"r": revision, "t": 1}.
_REVISION_OF = """
local function revision_of(raw)
  if not raw then return nil end
  local ok, doc = pcall(cjson.decode, raw)
  if ok and type(doc) == 'table' then return tonumber(doc['r']) end
  return nil
end
local cur = revision_of(redis.call('GET', KEYS[1]))
local rev = tonumber(ARGV[2])
"""
# KEYS[1]; ARGV value, revision, ttl_ms -> 1 set, 0 refused (a newer revision is cached)
_FILL = _REVISION_OF + """
if cur and cur > rev then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""
# KEYS[1]; ARGV tombstone, revision, ttl_ms -> 1 set, 0 that revision or a newer one is already there
_INVALIDATE = _REVISION_OF + """
if cur and cur >= rev then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""


class FallbackMode(enum.Enum):
    NONE = "none"  # Redis failures raise CacheUnavailableError
    DATABASE = "database"  # every Redis failure falls back to a database read
    DATABASE_BREAKER = "database+breaker"  # as DATABASE, and an open breaker skips Redis entirely


class CacheUnavailableError(Exception):
    """Redis failed (or the breaker is open) and ``FallbackMode.NONE`` is set.
    ``__cause__`` holds the underlying Redis error."""


class InvalidationFailed(CacheUnavailableError):
    """``update_price`` COMMITTED to the database (``revision``) but could not
    invalidate Redis (``FallbackMode.NONE``): the write happened; other processes
    may read the previous revision from Redis until its TTL."""

    committed = True

    def __init__(self, message: str, revision: int) -> None:
        super().__init__(message)
        self.revision = revision


@dataclass(frozen=True)
class CacheConfig:
    """``ttl_ms`` is the logical TTL; each write adds up to ``ttl_jitter_ratio``
    of it. ``xfetch_beta`` 0 disables early refresh (1.0 is the paper's default;
    >1 refreshes earlier). ``near_ttl_ms`` 0 disables the near cache."""

    key_prefix: str = "cat"
    ttl_ms: int = 300_000
    ttl_jitter_ratio: float = 0.1
    missing_ttl_ms: int = 30_000  # negative caching for ids that do not exist
    xfetch_beta: float = 1.0
    single_flight: bool = True
    near_ttl_ms: int = 0
    near_max_entries: int = 10_000
    fallback: FallbackMode = FallbackMode.DATABASE_BREAKER
    breaker_fail_max: int = 5
    breaker_reset_timeout_s: float = 5.0


def xfetch_should_refresh(now_ms: float, expiry_ms: float, delta_ms: float, beta: float, rand: float) -> bool:
    """XFetch: refresh early when ``now - delta * beta * ln(rand) >= expiry``.

    ``delta_ms`` is how long the last recompute took; ``rand`` is uniform in (0, 1].
    The closer to expiry and the slower the recompute, the likelier a refresh.
    """
    if beta <= 0:
        return False
    rand = min(max(rand, 1e-12), 1.0)
    return now_ms - delta_ms * beta * math.log(rand) >= expiry_ms


class _NearCache:
    """Bounded in-process map with a per-entry TTL (monotonic clock)."""

    def __init__(self, ttl_ms: int, max_entries: int) -> None:
        self.ttl_s = ttl_ms / 1000
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str) -> tuple[bool, Any]:
        item = self._data.get(key)
        if item is None:
            return False, None
        if item[0] < time.monotonic():
            del self._data[key]
            return False, None
        return True, item[1]

    def put(self, key: str, value: Any) -> None:
        self._data[key] = (time.monotonic() + self.ttl_s, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def drop(self, key: str) -> None:
        self._data.pop(key, None)


class CacheAside:
    """Product reads through Redis with database fallback.

    ``client`` is any ``redis.asyncio`` client (plain, Sentinel master, cluster).
    Every script touches one key, so no hash tags are needed.
    """

    def __init__(
        self,
        client: Any,
        db: ProductsDB,
        config: CacheConfig = CacheConfig(),
        retry: RetryPolicy = RetryPolicy.none(),
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.db = db
        self.config = config
        self.retry = retry
        self.counters = Counters(COUNTERS)
        self._rng = rng or random.Random()
        self._fill = LuaScript(client, _FILL)
        self._invalidate = LuaScript(client, _INVALIDATE)
        self._inflight: dict[int, tuple[int, asyncio.Task[Product | None]]] = {}  # id -> (generation, load)
        # Bumped when a write starts, commits and finishes invalidating: a read or load that
        # began under an older generation neither fills the near cache nor is joined.
        self._generation: dict[int, int] = {}
        # The highest revision this process committed per product: nothing older is served.
        self._floor: dict[int, int] = {}
        self._near = _NearCache(config.near_ttl_ms, config.near_max_entries) if config.near_ttl_ms > 0 else None
        self.breaker: AsyncBreaker | None = None
        if config.fallback is FallbackMode.DATABASE_BREAKER:
            self.breaker = AsyncBreaker(config.breaker_fail_max, config.breaker_reset_timeout_s, name="cache-aside")

    # -- observability -------------------------------------------------------

    @property
    def breaker_state(self) -> str:
        """``"closed" | "open" | "half-open"``, or ``"disabled"`` without a breaker."""
        return self.breaker.state if self.breaker else "disabled"

    def add_breaker_listener(self, listener: StateListener) -> None:
        """``listener(old, new)`` on every breaker transition (no-op without a breaker)."""
        if self.breaker:
            self.breaker.add_listener(listener)

    def key(self, product_id: int) -> str:
        return f"{self.config.key_prefix}:product:{product_id}"

    # -- read path -----------------------------------------------------------

    async def get_product(self, product_id: int) -> Product | None:
        """The product, or None if it does not exist (a cached fact too)."""
        product, _source = await self.read(product_id)
        return product

    async def read(self, product_id: int) -> tuple[Product | None, str]:
        """The product and where it came from: ``near`` (in-process), ``cache`` (Redis),
        ``db`` (a miss, then filled) or ``fallback`` (Redis failed or the breaker is open)."""
        key = self.key(product_id)
        generation = self._generation.get(product_id, 0)
        if self._near is not None:
            found, value = self._near.get(key)
            if found and self._fresh(product_id, value):
                self.counters.inc("near_hits")
                return value, "near"
            if found:
                self._near.drop(key)
                self.counters.inc("stale_rejected")
        try:
            raw = await self._redis(lambda: self.client.get(key))
        except CircuitBreakerError as exc:
            self.counters.inc("breaker_rejections")
            return await self._fallback(product_id, exc), "fallback"
        except REDIS_FAILURES as exc:
            return await self._fallback(product_id, exc), "fallback"

        entry = json.loads(raw) if raw is not None else None
        if entry is None or entry.get("t"):  # absent, or a tombstone left by a write
            self.counters.inc("misses")
            return await self._load(product_id, fill=True), "db"
        self.counters.inc("hits")
        value = Product.from_dict(entry["v"]) if entry["v"] is not None else None
        if not self._fresh(product_id, value):  # older than our own write: its invalidation failed or was lost
            self.counters.inc("stale_rejected")
            return await self._load(product_id, fill=True), "db"
        now_ms = time.time() * 1000
        if xfetch_should_refresh(now_ms, entry["e"], entry["d"], self.config.xfetch_beta, self._rng.random()):
            self.counters.inc("early_refreshes")
            return await self._load(product_id, fill=True), "db"
        if self._near is not None and self._generation.get(product_id, 0) == generation:
            self._near.put(key, value)
        return value, "cache"

    def _fresh(self, product_id: int, product: Product | None) -> bool:
        """Not older than the newest revision this process committed for the product."""
        return product is None or product.revision >= self._floor.get(product_id, 0)

    async def _fallback(self, product_id: int, exc: BaseException) -> Product | None:
        if self.config.fallback is FallbackMode.NONE:
            raise CacheUnavailableError(f"redis unavailable for {self.key(product_id)}: {exc!r}") from exc
        self.counters.inc("fallbacks")
        return await self._load(product_id, fill=False)

    async def _load(self, product_id: int, fill: bool) -> Product | None:
        """One database load per product and generation: a read issued after a write
        in this process never joins a load that started before it."""
        generation = self._generation.get(product_id, 0)
        if not self.config.single_flight:
            return await self._load_and_fill(product_id, fill, generation)
        current = self._inflight.get(product_id)
        if current is not None and current[0] == generation:
            task = current[1]
            self.counters.inc("single_flight_joins")
        else:
            task = asyncio.ensure_future(self._load_and_fill(product_id, fill, generation))
            self._inflight[product_id] = (generation, task)
            task.add_done_callback(lambda t: self._forget(product_id, t))
        # shield: a caller that gives up must not cancel the load others wait on
        return await asyncio.shield(task)

    def _forget(self, product_id: int, task: asyncio.Task[Product | None]) -> None:
        current = self._inflight.get(product_id)
        if current is not None and current[1] is task:
            del self._inflight[product_id]

    async def _load_and_fill(self, product_id: int, fill: bool, generation: int) -> Product | None:
        started = time.monotonic()
        self.counters.inc("db_queries")
        product = await self.db.get_product(product_id)
        delta_ms = (time.monotonic() - started) * 1000
        key = self.key(product_id)
        if self._generation.get(product_id, 0) != generation:
            return product  # a write in this process since the query began: cache nothing
        if fill:
            revision = product.revision if product is not None else 0
            base_ms = self.config.ttl_ms if product is not None else self.config.missing_ttl_ms
            ttl_ms = jittered_ttl_ms(base_ms, self.config.ttl_jitter_ratio, self._rng)
            payload = json.dumps({"r": revision, "v": product.to_dict() if product else None,
                                  "d": round(delta_ms, 3), "e": time.time() * 1000 + ttl_ms})
            try:
                if not await self._redis(lambda: self._fill(keys=[key], args=[payload, revision, ttl_ms])):
                    self.counters.inc("fills_refused")  # another process cached a newer revision
                    return product
            except CircuitBreakerError:
                self.counters.inc("breaker_rejections")
                self.counters.inc("fill_failures")
            except REDIS_FAILURES:
                self.counters.inc("fill_failures")  # error already counted by type
        if self._near is not None and self._generation.get(product_id, 0) == generation:
            self._near.put(key, product)
        return product

    # -- write path ----------------------------------------------------------

    async def update_price(self, product_id: int, price_cents: int) -> int | None:
        """Update the database, then invalidate; returns the committed revision (None:
        no such product, nothing written). A failed invalidation leaves the previous
        revision in Redis for other processes until its TTL; it is counted as
        ``invalidation_failures`` and, in ``FallbackMode.NONE``, raised as
        ``InvalidationFailed`` (``.committed`` True, ``.revision``). This process
        never serves a revision older than one it committed, whatever Redis holds."""
        key = self.key(product_id)
        self._bump(product_id, key)
        self.counters.inc("db_queries")
        revision = await self.db.update_price(product_id, price_cents)
        if revision is None:
            return None
        self._floor[product_id] = max(self._floor.get(product_id, 0), revision)
        self._bump(product_id, key)
        tombstone = json.dumps({"r": revision, "t": 1})
        try:
            await self._redis(lambda: self._invalidate(keys=[key], args=[tombstone, revision, self.config.ttl_ms]))
        except _INVALIDATE_FAILURES as exc:
            if isinstance(exc, CircuitBreakerError):
                self.counters.inc("breaker_rejections")
            self.counters.inc("invalidation_failures")
            if self.config.fallback is FallbackMode.NONE:
                raise InvalidationFailed(
                    f"price of product {product_id} committed (revision {revision}), "
                    f"but invalidating {key} failed: {exc!r}", revision) from exc
        finally:
            # after the invalidation's reply: a read that raced it may have refilled the near cache
            self._bump(product_id, key)
        return revision

    def _bump(self, product_id: int, key: str) -> None:
        self._generation[product_id] = self._generation.get(product_id, 0) + 1
        if self._near is not None:
            self._near.drop(key)

    # -- plumbing ------------------------------------------------------------

    async def _redis(self, op: Callable[[], Awaitable[T]]) -> T:
        if self.breaker is None:
            return await self.retry.run(op, self.counters)
        breaker = self.breaker
        return await breaker.call(lambda: self.retry.run(op, self.counters))
