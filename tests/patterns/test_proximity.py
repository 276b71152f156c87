"""Proximity search against real Redis, checked against brute force."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from faults.injector import FaultInjector
from patterns.common import prepare_client
from patterns.proximity import EARTH_RADIUS_M, DriverSimulator, FleetIndex, GeoUnavailable, haversine_m, offset
from tests.patterns.helpers import no_retry_client, open_client, outage_faults, run_healed

pytestmark = pytest.mark.integration

PRECISION_M = 1.0  # 52-bit geohash cells are ~0.6 m; allow for the stored position's rounding


def in_box(clon: float, clat: float, lon: float, lat: float, width_m: float, height_m: float) -> tuple[bool, bool]:
    """(inside, borderline) by Redis's rule: latitude distance along the meridian,
    longitude distance along the point's own parallel."""
    dlat = EARTH_RADIUS_M * abs(math.radians(lat) - math.radians(clat))
    dlon = haversine_m(lon, lat, clon, lat)
    inside = dlat <= height_m / 2 and dlon <= width_m / 2
    border = abs(dlat - height_m / 2) < PRECISION_M or abs(dlon - width_m / 2) < PRECISION_M
    return inside, border


def test_radius_and_box_match_brute_force(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            sim = DriverSimulator(2000, seed=11)
            index = FleetIndex(client, f"{prefix}:paris")
            positions = sim.snapshot()
            for i in range(0, len(positions), 500):
                await index.update(positions[i:i + 500])
            truth = {m: (lon, lat) for m, lon, lat in positions}
            queries = [(2.3522, 48.8566, 1000.0), (2.30, 48.87, 2500.0), (2.38, 48.85, 600.0)]
            for clon, clat, radius in queries:
                result = await index.search_radius(clon, clat, radius)
                assert not result.stale
                got = {h.member: h for h in result.hits}
                dist = {m: haversine_m(clon, clat, lon, lat) for m, (lon, lat) in truth.items()}
                expected = {m for m, d in dist.items() if d <= radius - PRECISION_M}
                maybe = {m for m, d in dist.items() if abs(d - radius) < PRECISION_M}
                assert expected <= set(got) <= expected | maybe
                assert len(expected) > 5  # the query is not vacuous
                for m, h in got.items():
                    assert h.distance_m == pytest.approx(dist[m], abs=PRECISION_M)
                assert [h.distance_m for h in result.hits] == sorted(h.distance_m for h in result.hits)
                nearest = await index.search_radius(clon, clat, radius, count=3)
                assert [h.member for h in nearest.hits] == [h.member for h in result.hits[:3]]

            for clon, clat, width, height in [(2.3522, 48.8566, 2000.0, 1000.0), (2.33, 48.86, 800.0, 3000.0)]:
                result = await index.search_box(clon, clat, width, height)
                flags = {m: in_box(clon, clat, lon, lat, width, height) for m, (lon, lat) in truth.items()}
                expected = {m for m, (inside, border) in flags.items() if inside and not border}
                maybe = {m for m, (_, border) in flags.items() if border}
                assert expected <= {x.member for x in result.hits} <= expected | maybe
                assert len(expected) > 5
        finally:
            await client.aclose()

    asyncio.run(main())


def test_moving_entities_update_in_place_and_stale_ones_are_swept(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            now = [1_000_000.0]
            index = FleetIndex(client, f"{prefix}:fleet", clock=lambda: now[0])
            sim = DriverSimulator(100, seed=3)
            await index.update(sim.snapshot())
            now[0] += 60
            moved = sim.step(dt_s=30)[:60]  # 60 drivers report again, 40 go silent
            await index.update(moved)
            assert await client.zcard(index.pos_key) == 100  # updated in place, not duplicated
            m, lon, lat = moved[0]
            (pos,) = await client.geopos(index.pos_key, m)
            assert haversine_m(lon, lat, pos[0], pos[1]) < PRECISION_M
            removed = await index.sweep(max_age_s=30)
            assert removed == 40 and index.counters["swept"] == 40
            assert await client.zcard(index.pos_key) == 60 and await client.zcard(index.seen_key) == 60
            remaining = {x.decode() for x in await client.zrange(index.pos_key, 0, -1)}
            assert remaining == {m for m, _, _ in moved}
            assert await index.sweep(max_age_s=30) == 0
        finally:
            await client.aclose()

    asyncio.run(main())


def test_degraded_answer_when_redis_is_unavailable(app_client_factory: Any, prefix: str) -> None:
    topo = app_client_factory.topo
    injector = FaultInjector(topo)

    async def main() -> None:
        client = await prepare_client(no_retry_client(app_client_factory))
        try:
            index = FleetIndex(client, f"{prefix}:fleet")
            await index.update(DriverSimulator(50, seed=5, spread_m=500).snapshot())
            fresh = await index.search_radius(2.3522, 48.8566, 1000)
            assert fresh.hits and not fresh.stale
            for f in outage_faults(topo):  # Redis goes away: connections refused
                await asyncio.to_thread(injector.inject, f)
            await asyncio.sleep(0.05)
            stale = await index.search_radius(2.3522, 48.8566, 1000)
            assert stale.stale and stale.hits == fresh.hits and stale.age_s >= 0.05
            with pytest.raises(GeoUnavailable):
                await index.search_radius(2.3522, 48.8566, 2000)  # never answered before
            assert index.counters["stale_answers"] == 1 and index.counters["unavailable"] == 1
            assert sum(index.counters.errors.values()) == 2
        finally:
            await client.aclose()

    run_healed(topo, main())


def test_a_late_report_does_not_move_a_driver_back(app_client_factory: Any, prefix: str) -> None:
    """Reports arrive out of order (a retried or delayed update): the newest report's
    position and last-seen time win."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            index = FleetIndex(client, f"{prefix}:fleet")
            newest, older = (2.35, 48.85), (2.30, 48.80)
            assert await index.update([("d1", *newest)], ts_ms=2_000_000) == 1
            assert await index.update([("d1", *older), ("d2", *older)], ts_ms=1_000_000) == 1  # d1 late, d2 new
            (pos,) = await client.geopos(index.pos_key, "d1")
            assert haversine_m(*newest, pos[0], pos[1]) < PRECISION_M
            assert await client.zscore(index.seen_key, "d1") == 2_000_000
            assert await client.zscore(index.seen_key, "d2") == 1_000_000
            assert index.counters["late_reports"] == 1 and index.counters["updates"] == 2
        finally:
            await client.aclose()

    asyncio.run(main())


def test_searches_leave_out_drivers_not_seen_within_max_age(app_client_factory: Any, prefix: str) -> None:
    """Nothing has swept yet: the search itself leaves out the driver that went silent,
    and COUNT still returns the nearest *fresh* drivers."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            now = [1_000_000.0]
            index = FleetIndex(client, f"{prefix}:fleet", clock=lambda: now[0], max_age_s=30)
            centre = (2.3522, 48.8566)
            await index.update([("silent", *offset(*centre, 10, 0))])  # the nearest, then goes quiet
            now[0] += 60
            await index.update([("near", *offset(*centre, 50, 0)), ("far", *offset(*centre, 400, 0))])
            result = await index.search_radius(*centre, 1000, count=1)
            assert [h.member for h in result.hits] == ["near"]
            assert [h.member for h in (await index.search_box(*centre, 2000, 2000)).hits] == ["near", "far"]
            everyone = await index.search_radius(*centre, 1000, max_age_s=None)  # per call: no filter
            assert [h.member for h in everyone.hits] == ["silent", "near", "far"]
            assert await client.zcard(index.pos_key) == 3  # filtered, not deleted
        finally:
            await client.aclose()

    asyncio.run(main())
