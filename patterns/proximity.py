"""Proximity search over moving entities (e.g. drivers), with staleness sweep and
a degraded answer when Redis is unavailable.

Keys (one hash tag per fleet): ``geo:{fleet}:pos`` (GEO set = sorted set of
52-bit geohashes, ~0.6 m precision) and ``geo:{fleet}:seen`` (sorted set
member -> last-seen epoch ms). Update, search and sweep are Lua scripts touching
both keys atomically. The newest report wins: a late or retried older report
neither moves an entity back nor lowers its last-seen time. Timestamps come
from the caller (the device's report time), so every writer, searcher and
sweeper must share a reasonably synced clock.

Staleness: searches leave out entities not seen for ``max_age_s`` themselves
(set on the index or per call); ``sweep`` (or ``run_sweeper``) only reclaims the
memory of entities that went silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from patterns.common import Counters, LuaScript, RetryPolicy, as_str, tagged
from patterns.failures import REDIS_FAILURES, is_transient

COUNTERS = ("updates", "late_reports", "update_failures", "searches", "stale_answers", "unavailable", "swept",
            "sweep_failures")

#: Earth radius Redis uses in its haversine (src/geohash_helper.c), metres.
EARTH_RADIUS_M = 6372797.560856

# KEYS[1] pos, KEYS[2] seen; ARGV repeated (lon, lat, member, ts_ms) -> number applied.
# Newest report wins: a report older than the member's last-seen time is skipped
# (an equal one, e.g. a retry, is applied again: same data).
_UPDATE = """
local applied = 0
for i = 1, #ARGV, 4 do
  local seen = redis.call('ZSCORE', KEYS[2], ARGV[i + 2])
  if not seen or tonumber(ARGV[i + 3]) >= tonumber(seen) then
    redis.call('GEOADD', KEYS[1], ARGV[i], ARGV[i + 1], ARGV[i + 2])
    redis.call('ZADD', KEYS[2], 'GT', ARGV[i + 3], ARGV[i + 2])
    applied = applied + 1
  end
end
return applied
"""

# KEYS[1] pos, KEYS[2] seen; ARGV lon, lat, shape ('r' radius_m | 'b' width_m height_m), count (0 = all),
# cutoff_ms (entities last seen before it are left out) -> {member, dist, {lon, lat}} nearest first
_SEARCH = """
local args = {'GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2]}
local n
if ARGV[3] == 'r' then
  args[#args + 1] = 'BYRADIUS'; args[#args + 1] = ARGV[4]; n = 5
else
  args[#args + 1] = 'BYBOX'; args[#args + 1] = ARGV[4]; args[#args + 1] = ARGV[5]; n = 6
end
for _, a in ipairs({'m', 'ASC', 'WITHDIST', 'WITHCOORD'}) do args[#args + 1] = a end
local count, cutoff = tonumber(ARGV[n]), tonumber(ARGV[n + 1])
local rows = redis.call(unpack(args))
local out = {}
for _, row in ipairs(rows) do
  local seen = tonumber(redis.call('ZSCORE', KEYS[2], row[1]) or '0')
  if seen >= cutoff then
    out[#out + 1] = row
    if count > 0 and #out >= count then break end
  end
end
return out
"""

# KEYS[1] pos, KEYS[2] seen; ARGV cutoff_ms, batch -> removed count
_SWEEP = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
if #stale == 0 then return 0 end
redis.call('ZREM', KEYS[1], unpack(stale))
redis.call('ZREM', KEYS[2], unpack(stale))
return #stale
"""


class _Default:
    """Marker: "use the index's setting" (None already means "no filter")."""


_DEFAULT = _Default()


class GeoUnavailable(Exception):
    """Redis failed and no earlier answer for this query exists; ``__cause__`` is the Redis error."""


@dataclass(frozen=True)
class Hit:
    member: str
    distance_m: float
    lon: float
    lat: float


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    stale: bool = False  # True: Redis failed, this is the last good answer to the same query
    age_s: float = 0.0  # age of a stale answer


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres, with Redis's earth radius."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dlat, dlon = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dlat / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


class FleetIndex:
    """Positions of one fleet. ``stale_cache_size`` bounds the last-known answers.
    ``max_age_s``: searches leave out entities not seen for that long (None: no
    filter); ``clock`` gives Unix seconds (report times and search cutoffs)."""

    def __init__(
        self,
        client: Any,
        fleet: str,
        retry: RetryPolicy = RetryPolicy.none(),
        stale_cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
        max_age_s: float | None = None,
    ) -> None:
        if max_age_s is not None and max_age_s <= 0:
            raise ValueError(f"max_age_s must be > 0 s or None, got {max_age_s}")
        self.client = client
        self.pos_key = f"geo:{tagged(fleet)}:pos"
        self.seen_key = f"geo:{tagged(fleet)}:seen"
        self.retry = retry
        self.clock = clock
        self.max_age_s = max_age_s
        self.counters = Counters(COUNTERS)
        self._update = LuaScript(client, _UPDATE)
        self._search_script = LuaScript(client, _SEARCH)
        self._sweep = LuaScript(client, _SWEEP)
        self._last: OrderedDict[tuple[Any, ...], tuple[float, list[Hit]]] = OrderedDict()
        self._last_max = stale_cache_size

    async def update(self, positions: Sequence[tuple[str, float, float]], ts_ms: int | None = None) -> int:
        """Upsert ``(member, lon, lat)`` positions reported at ``ts_ms`` (default now);
        returns how many were applied. A position older than the member's last-seen
        time is skipped (``late_reports``): the newest report wins. Idempotent, so
        retries are safe. Raises the Redis error after counting it."""
        ts = int(self.clock() * 1000) if ts_ms is None else ts_ms
        args: list[Any] = []
        for member, lon, lat in positions:
            args += [lon, lat, member, ts]
        try:
            n = await self.retry.run(lambda: self._update(keys=[self.pos_key, self.seen_key], args=args), self.counters)
        except REDIS_FAILURES:
            self.counters.inc("update_failures")
            raise
        self.counters.inc("updates", int(n))
        self.counters.inc("late_reports", len(positions) - int(n))
        return int(n)

    async def sweep(self, max_age_s: float, batch: int = 1000) -> int:
        """Remove entities not seen for ``max_age_s``; at most ``batch`` per call."""
        cutoff_ms = int((self.clock() - max_age_s) * 1000)
        keys = [self.pos_key, self.seen_key]
        removed = int(await self.retry.run(lambda: self._sweep(keys=keys, args=[cutoff_ms, batch]), self.counters))
        self.counters.inc("swept", removed)
        return removed

    @contextlib.asynccontextmanager
    async def run_sweeper(self, interval_s: float, max_age_s: float, batch: int = 1000) -> AsyncIterator[None]:
        """``async with index.run_sweeper(10, 300):`` sweep every ``interval_s`` while the
        block runs (memory only: searches filter by ``max_age_s`` themselves). A failed
        sweep is counted (``sweep_failures``) and tried again next interval."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    while await self.sweep(max_age_s, batch) == batch:
                        pass  # more than one batch went stale
                except REDIS_FAILURES:
                    self.counters.inc("sweep_failures")

        task = asyncio.create_task(loop(), name=f"sweeper-{self.pos_key}")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def search_radius(self, lon: float, lat: float, radius_m: float, count: int | None = None,
                            max_age_s: float | _Default | None = _DEFAULT) -> SearchResult:
        """Entities within ``radius_m`` of (lon, lat), nearest first, seen within
        ``max_age_s`` (default: the index's)."""
        return await self._search(("r", lon, lat, radius_m, count), ["r", radius_m], lon, lat, count, max_age_s)

    async def search_box(self, lon: float, lat: float, width_m: float, height_m: float, count: int | None = None,
                         max_age_s: float | _Default | None = _DEFAULT) -> SearchResult:
        """Entities inside the ``width_m`` x ``height_m`` box centred on (lon, lat), nearest
        first, seen within ``max_age_s`` (default: the index's)."""
        return await self._search(("b", lon, lat, width_m, height_m, count), ["b", width_m, height_m], lon, lat,
                                  count, max_age_s)

    async def _search(self, query: tuple[Any, ...], shape: list[Any], lon: float, lat: float, count: int | None,
                      max_age_s: float | _Default | None) -> SearchResult:
        self.counters.inc("searches")
        age = self.max_age_s if isinstance(max_age_s, _Default) else max_age_s
        cutoff_ms = 0 if age is None else int((self.clock() - age) * 1000)
        cache_key = tuple(round(x, 6) if isinstance(x, float) else x for x in (*query, age))
        try:
            rows = await self.retry.run(
                lambda: self._search_script(keys=[self.pos_key, self.seen_key],
                                            args=[lon, lat, *shape, count or 0, cutoff_ms]),
                self.counters,
            )
        except REDIS_FAILURES as exc:
            if not is_transient(exc):
                raise  # the server rejected the search: a bug, not an outage
            last = self._last.get(cache_key)
            if last is None:
                self.counters.inc("unavailable")
                raise GeoUnavailable(f"{self.pos_key}: {exc!r}") from exc
            self.counters.inc("stale_answers")
            return SearchResult(last[1], stale=True, age_s=time.monotonic() - last[0])
        hits = [Hit(as_str(m) or "", float(d), float(c[0]), float(c[1])) for m, d, c in rows]
        self._last[cache_key] = (time.monotonic(), hits)
        self._last.move_to_end(cache_key)
        while len(self._last) > self._last_max:
            self._last.popitem(last=False)
        return SearchResult(hits)


class DriverSimulator:
    """Seeded fleet: ``n`` drivers scattered (Gaussian, sigma ``spread_m``) around a
    centre (default Paris), moving by random walk at ``speed_mps`` with slowly
    turning headings."""

    def __init__(
        self,
        n: int,
        centre: tuple[float, float] = (2.3522, 48.8566),
        spread_m: float = 5_000.0,
        speed_mps: float = 8.0,
        seed: int = 7,
    ) -> None:
        self.rng = random.Random(seed)
        self.centre = centre
        self.speed_mps = speed_mps
        self.positions: dict[str, tuple[float, float]] = {}
        self.headings: dict[str, float] = {}
        for i in range(n):
            dx, dy = self.rng.gauss(0, spread_m), self.rng.gauss(0, spread_m)
            self.positions[f"driver:{i}"] = offset(centre[0], centre[1], dx, dy)
            self.headings[f"driver:{i}"] = self.rng.uniform(0, 2 * math.pi)

    def step(self, dt_s: float) -> list[tuple[str, float, float]]:
        """Advance every driver by ``dt_s`` seconds; returns (member, lon, lat) for all."""
        out = []
        for member, (lon, lat) in self.positions.items():
            h = self.headings[member] + self.rng.gauss(0, 0.3)
            self.headings[member] = h
            dist = self.speed_mps * dt_s * self.rng.uniform(0.5, 1.5)
            lon, lat = offset(lon, lat, dist * math.cos(h), dist * math.sin(h))
            lat = max(-85.0, min(85.0, lat))
            self.positions[member] = (lon, lat)
            out.append((member, lon, lat))
        return out

    def snapshot(self) -> list[tuple[str, float, float]]:
        return [(m, lon, lat) for m, (lon, lat) in self.positions.items()]


def offset(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    """Move (lon, lat) by metres east/north (equirectangular; fine for a city)."""
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    dlon = math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
    return lon + dlon, lat + dlat
