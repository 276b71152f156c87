"""Proximity search over a moving fleet under load: the pattern's seeded drivers
around Paris report positions (updated in place), some go off duty (removed),
and riders search a radius around a fixed set of pickup points.

Ops and records (the ``proximity_results`` check's vocabulary):

* ``geoadd`` ``{"member", "lon", "lat"}``: one driver moved and reported.
* ``georem`` ``{"member"}``: a driver went off duty (removed from both keys);
  it reappears at its next report.
* ``geosearch`` ``{"lon", "lat", "radius_m"}``, value = members Redis returned.
* ``geosearch_degraded``, same args: Redis failed and the pattern answered with
  the last good result for that query (stale by design); value = its members.
  Kept apart so the check judges fresh answers only; a second, report-only
  ``proximity_results`` (``search_op="geosearch_degraded"``) measures how far off
  the degraded answers were.

A search Redis failed for with no earlier answer raises ``GeoUnavailable``; it
is recorded with the outcome and type of the Redis error that caused it.
Pickup points are fixed so queries repeat and a degraded answer exists.
"""
from __future__ import annotations

import math
import random
from typing import Any

from experiments.final_read import settled_read
from experiments.model import PatternLoad, Scenario, app_client
from experiments.workload import OpResult, attempt
from patterns.common import LuaScript
from patterns.proximity import (
    DriverSimulator,
    FleetIndex,
    SearchResult,
    offset,
)

N_DRIVERS = 300
SPREAD_M = 3_000.0  # sigma of the drivers' scatter around the centre
PICKUPS = 24  # fixed search centres
RADII_M = (500.0, 1_000.0, 2_000.0)
STEP_M = (5.0, 40.0)  # a driver moves this far between two reports
ADD_RATIO, REMOVE_RATIO = 0.6, 0.05  # the rest are searches
CLIENT_TIMEOUT_S = 0.25  # socket timeout: a stalled Redis costs at most this per attempt

# KEYS[1] pos, KEYS[2] seen (one hash tag); ARGV[1] member -> removed from pos (0/1)
_REMOVE = """
local n = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
"""


class ProximityScenario(Scenario):
    async def setup(self) -> None:
        self.client = await app_client(self.ctx, CLIENT_TIMEOUT_S)
        self.index = FleetIndex(self.client, f"exp-{self.ctx.run_id}")
        self._remove = LuaScript(self.client, _REMOVE)
        self.sim = DriverSimulator(N_DRIVERS, spread_m=SPREAD_M, seed=self.ctx.seed)
        self.drivers = sorted(self.sim.positions)
        rng = random.Random(self.ctx.seed)
        lon0, lat0 = self.sim.centre
        self.pickups = [(*offset(lon0, lat0, rng.gauss(0, SPREAD_M / 2), rng.gauss(0, SPREAD_M / 2)),
                         rng.choice(RADII_M)) for _ in range(PICKUPS)]

    def fault_key(self) -> str:
        return self.index.pos_key

    def _move(self, member: str, rng: random.Random) -> tuple[float, float]:
        """Advance one driver along its slowly turning heading; returns (lon, lat)."""
        h = self.sim.headings[member] + rng.gauss(0, 0.3)
        self.sim.headings[member] = h
        lon, lat = self.sim.positions[member]
        dist = rng.uniform(*STEP_M)
        self.sim.positions[member] = offset(lon, lat, dist * math.cos(h), dist * math.sin(h))
        return self.sim.positions[member]

    async def op(self, client_id: int, rng: random.Random) -> OpResult:
        draw = rng.random()
        if draw < ADD_RATIO:
            member = rng.choice(self.drivers)
            lon, lat = self._move(member, rng)
            return await attempt("geoadd", {"member": member, "lon": lon, "lat": lat},
                                 self.index.update([(member, lon, lat)]))
        if draw < ADD_RATIO + REMOVE_RATIO:
            member = rng.choice(self.drivers)
            return await attempt("georem", {"member": member},
                                 self._remove(keys=[self.index.pos_key, self.index.seen_key], args=[member]))
        lon, lat, radius = rng.choice(self.pickups)
        args = {"lon": lon, "lat": lat, "radius_m": radius}
        res = await attempt("geosearch", args, self.index.search_radius(lon, lat, radius), read=True)
        if res.outcome != "ok":
            return res
        result: SearchResult = res.value
        members = [h.member for h in result.hits]
        if result.stale:
            return res._replace(op="geosearch_degraded", value=members)
        return res._replace(value=members)

    async def finish(self) -> dict[str, Any]:
        counters = self.index.counters.snapshot()
        try:
            members = int(await settled_read(lambda: self.client.zcard(self.index.pos_key)))
        except Exception as e:  # noqa: BLE001 - recorded in the final state, not swallowed
            members = None
            counters["final_read_error"] = type(e).__name__
        await self.client.aclose()
        return {"proximity_counters": counters, "members_at_end": members}


CHECKS: list[Any] = [
    {"name": "proximity_results", "params": {"label": "fresh answers"}},
    {"name": "proximity_results", "params": {"search_op": "geosearch_degraded", "label": "degraded answers (measured, "
                                       "not judged)", "max_missing": None, "max_stale": None}},
]
LOAD = PatternLoad(pattern="proximity", scenario=ProximityScenario, checks=CHECKS)
EXPERIMENTS: list[Any] = []
