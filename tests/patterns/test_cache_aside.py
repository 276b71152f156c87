"""Cache-aside over SQLite against real Redis: hits, stampede, invalidation,
fallback to the database and the circuit breaker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from faults import kinds
from faults.injector import FaultInjector
from patterns.cache_aside import CacheAside, CacheConfig, CacheUnavailableError, FallbackMode, InvalidationFailed
from patterns.common import prepare_client
from patterns.products_db import ProductsDB
from tests.patterns.helpers import closed_port_client, eventually, open_client, run_healed

pytestmark = pytest.mark.integration


@pytest.fixture
def db(tmp_path: Path) -> Any:
    products = ProductsDB.create(tmp_path / "products.sqlite", n_products=200, seed=1)
    yield products
    products.close()


def test_read_through_hit_miss_and_negative_caching(app_client_factory: Any, prefix: str, db: ProductsDB) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            cache = CacheAside(client, db, CacheConfig(key_prefix=prefix, ttl_ms=60_000))
            first = await cache.get_product(1)
            second = await cache.get_product(1)
            assert first == second and first is not None and first.id == 1
            assert await cache.get_product(10_000) is None
            assert await cache.get_product(10_000) is None  # the absence is cached too
            c = cache.counters
            assert (c["misses"], c["hits"], c["db_queries"], db.queries) == (2, 2, 2, 2)
            ttl = await client.pttl(cache.key(1))
            assert 50_000 < ttl <= 66_000  # ttl + up to 10% jitter
            assert 0 < await client.pttl(cache.key(10_000)) <= 33_000
        finally:
            await client.aclose()

    asyncio.run(main())


def test_single_flight_collapses_a_stampede(app_client_factory: Any, prefix: str, tmp_path: Path) -> None:
    # A slow database (100 ms a query) makes the stampede certain without single
    # flight: every concurrent miss arrives while the first load is still running,
    # whatever order the client sends the GETs in.
    db = ProductsDB.create(tmp_path / "slow.sqlite", n_products=10, seed=1, latency_ms=100)

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            cache = CacheAside(client, db, CacheConfig(key_prefix=prefix))
            results = await asyncio.gather(*(cache.get_product(5) for _ in range(200)))
            assert len(set(results)) == 1
            assert cache.counters["db_queries"] == 1 and db.queries == 1
            assert cache.counters["single_flight_joins"] == cache.counters["misses"] - 1

            unprotected = CacheAside(client, db, CacheConfig(key_prefix=prefix + "x", single_flight=False))
            await asyncio.gather(*(unprotected.get_product(6) for _ in range(50)))
            assert unprotected.counters["db_queries"] > 1  # what single flight prevents
        finally:
            await client.aclose()

    try:
        asyncio.run(main())
    finally:
        db.close()


def test_write_invalidates_and_next_read_sees_it(app_client_factory: Any, prefix: str, db: ProductsDB) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            cache = CacheAside(client, db, CacheConfig(key_prefix=prefix, near_ttl_ms=60_000))
            before = await cache.get_product(3)
            assert before is not None
            revision = await cache.update_price(3, before.price_cents + 100)
            assert revision == before.revision + 1
            assert json.loads(await client.get(cache.key(3))) == {"r": revision, "t": 1}  # the tombstone
            after = await cache.get_product(3)  # near cache was dropped too
            assert after is not None and after.price_cents == before.price_cents + 100
            assert await cache.get_product(3) == after
            assert cache.counters["near_hits"] == 1
        finally:
            await client.aclose()

    asyncio.run(main())


def test_xfetch_refreshes_early(app_client_factory: Any, prefix: str, db: ProductsDB) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            eager = CacheAside(client, db, CacheConfig(key_prefix=prefix, xfetch_beta=1e12))
            await eager.get_product(9)
            for _ in range(3):
                await eager.get_product(9)
            assert eager.counters["early_refreshes"] == 3 and eager.counters["db_queries"] == 4
            calm = CacheAside(client, db, CacheConfig(key_prefix=prefix + "c", xfetch_beta=1.0))
            for _ in range(4):
                await calm.get_product(9)
            assert calm.counters["early_refreshes"] == 0 and calm.counters["db_queries"] == 1
        finally:
            await client.aclose()

    asyncio.run(main())


def test_falls_back_to_sqlite_when_redis_is_down(db: ProductsDB) -> None:
    async def main() -> None:
        client = closed_port_client()
        try:
            cache = CacheAside(client, db, CacheConfig(fallback=FallbackMode.DATABASE))
            product = await cache.get_product(1)
            assert product is not None and product.id == 1
            assert cache.counters["fallbacks"] == 1 and cache.counters["db_queries"] == 1
            assert cache.counters.errors["ConnectionError"] == 1
            assert await cache.update_price(1, 999)
            assert cache.counters["invalidation_failures"] == 1
            assert (await cache.get_product(1)).price_cents == 999  # type: ignore[union-attr]  # product 1 exists

            strict = CacheAside(client, db, CacheConfig(fallback=FallbackMode.NONE))
            with pytest.raises(CacheUnavailableError) as info:
                await strict.get_product(1)
            assert isinstance(info.value.__cause__, redis.ConnectionError)
            assert strict.counters["db_queries"] == 0
        finally:
            await client.aclose()

    asyncio.run(main())


def test_breaker_opens_skips_redis_and_closes(app_client_factory: Any, prefix: str, db: ProductsDB) -> None:
    topo = app_client_factory.topo
    outage = [kinds.make("down", n.name) for n in topo.spec.redis_nodes]  # Toxiproxy: refused + dropped
    injector = FaultInjector(topo)

    async def main() -> None:
        client = app_client_factory(socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
        await prepare_client(client)
        try:
            config = CacheConfig(key_prefix=prefix, breaker_fail_max=3, breaker_reset_timeout_s=0.3)
            cache = CacheAside(client, db, config)
            seen: list[tuple[str, str]] = []
            cache.add_breaker_listener(lambda old, new: seen.append((old, new)))
            assert await cache.get_product(1) is not None and cache.breaker_state == "closed"

            for fault in outage:
                injector.inject(fault)
            for _ in range(3):  # each Redis failure falls back to SQLite
                assert (await cache.get_product(1)) is not None
            assert cache.breaker_state == "open"
            errors_when_opened = sum(cache.counters.errors.values())
            assert errors_when_opened == 3
            for _ in range(5):  # open: Redis is not even tried
                assert (await cache.get_product(1)) is not None
            assert cache.counters["breaker_rejections"] == 5
            assert sum(cache.counters.errors.values()) == errors_when_opened
            assert cache.counters["fallbacks"] == 8

            for fault in outage:
                injector.heal(fault)

            async def closed_again() -> bool:
                await cache.get_product(1)
                return cache.breaker_state == "closed"

            await eventually(closed_again, 10, "breaker half-opens after 0.3 s and closes on success", interval_s=0.05)
            assert seen[0] == ("closed", "open")
            assert ("open", "half-open") in seen and seen[-1] == ("half-open", "closed")
            assert [t.new for t in cache.breaker.transitions] == [new for _, new in seen]  # type: ignore[union-attr]  # this cache has a breaker
        finally:
            await client.aclose()

    run_healed(topo, main())


class GatedDB(ProductsDB):
    """The real SQLite products database, with a gate a test closes to hold reads *after* they
    read their row and before they return: the slow database query of a race."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self.gate.set()
        self.held = 0

    async def get_product(self, product_id: int) -> Any:
        product = await super().get_product(product_id)
        if not self.gate.is_set():
            self.held += 1
            await self.gate.wait()
        return product


@pytest.fixture
def gated_db(tmp_path: Path) -> Any:
    ProductsDB.create(tmp_path / "gated.sqlite", n_products=20, seed=1).close()
    products = GatedDB(tmp_path / "gated.sqlite")
    yield products
    products.close()


def test_reads_after_a_write_see_it_despite_a_load_started_before(app_client_factory: Any, prefix: str,
                                                                   gated_db: GatedDB) -> None:
    """The race from the review: a load reads the old row, the write commits and
    invalidates, and the next read (issued after update_price returned) must not join
    that load nor be served its old row from the near cache afterwards."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            cache = CacheAside(client, gated_db, CacheConfig(key_prefix=prefix, near_ttl_ms=60_000))
            old = await gated_db.get_product(4)
            assert old is not None
            gated_db.gate.clear()
            early = asyncio.create_task(cache.get_product(4))  # reads the old row, then is held
            await eventually(lambda: _async(gated_db.held == 1), 5, "the early load read its row")
            revision = await cache.update_price(4, old.price_cents + 1)
            after = asyncio.create_task(cache.get_product(4))  # issued after the write returned
            await asyncio.sleep(0.05)
            gated_db.gate.set()
            early_product = await early
            assert early_product is not None
            assert early_product.price_cents == old.price_cents  # concurrent with the write: may be old
            fresh = await after
            assert fresh is not None and fresh.price_cents == old.price_cents + 1
            for _ in range(3):  # and later reads, near cache included, never go back
                again = await cache.get_product(4)
                assert again is not None and again.price_cents == old.price_cents + 1
            assert revision == old.revision + 1 == fresh.revision
        finally:
            await client.aclose()

    asyncio.run(main())


def test_a_read_in_flight_during_the_invalidation_does_not_refill_the_near_cache(
        app_client_factory: Any, prefix: str, db: ProductsDB) -> None:
    """Replies from Redis delayed 300 ms (a latency toxic, server -> client): a read
    whose GET ran before the DEL gets its old value back while update_price is still
    waiting for the DEL's reply. Once update_price returns, no read may see the old price."""
    topo = app_client_factory.topo
    injector = FaultInjector(topo)
    slow = [kinds.make("latency", n.name, latency_ms=300, direction="downstream") for n in topo.spec.redis_nodes]

    async def main() -> None:
        client = await prepare_client(app_client_factory())
        try:
            cache = CacheAside(client, db, CacheConfig(key_prefix=prefix, near_ttl_ms=60_000))
            primer = CacheAside(client, db, CacheConfig(key_prefix=prefix))  # another process, no near cache
            old = await primer.get_product(6)  # now in Redis, not in `cache`'s near cache
            assert old is not None
            await asyncio.gather(*(client.get(cache.key(6)) for _ in range(4)))  # several pooled connections
            for f in slow:
                await asyncio.to_thread(injector.inject, f)
            early = asyncio.create_task(cache.get_product(6))
            await asyncio.sleep(0.1)  # its GET has run on the server; the reply is on its way
            await cache.update_price(6, old.price_cents + 1)
            for f in slow:
                await asyncio.to_thread(injector.heal, f)
            await early
            after = await cache.get_product(6)
            assert after is not None and after.price_cents == old.price_cents + 1
        finally:
            await client.aclose()

    run_healed(topo, main())


def test_a_stale_fill_from_another_process_cannot_outlive_a_write(app_client_factory: Any, prefix: str,
                                                                 gated_db: GatedDB) -> None:
    """The classic cache-aside race across processes: process A reads the old row, B
    commits and invalidates, then A's fill lands. Fills and invalidations carry the
    row's revision and the newest revision wins, so A's fill is refused."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            config = CacheConfig(key_prefix=prefix)
            a, b, c = (CacheAside(client, gated_db, config) for _ in range(3))
            old = await gated_db.get_product(8)
            assert old is not None
            gated_db.gate.clear()
            slow_fill = asyncio.create_task(a.get_product(8))
            await eventually(lambda: _async(gated_db.held == 1), 5, "A read the old row")
            revision = await b.update_price(8, old.price_cents + 5)
            gated_db.gate.set()
            await slow_fill
            seen = await c.get_product(8)  # a third process, after A's fill attempt
            assert seen is not None and seen.price_cents == old.price_cents + 5
            assert seen.revision == revision
            assert a.counters["fills_refused"] == 1
        finally:
            await client.aclose()

    asyncio.run(main())


def test_a_committed_write_whose_invalidation_failed_says_so(db: ProductsDB) -> None:
    async def main() -> None:
        client = closed_port_client()
        try:
            strict = CacheAside(client, db, CacheConfig(fallback=FallbackMode.NONE))
            before = await db.get_product(2)
            assert before is not None
            with pytest.raises(InvalidationFailed) as info:
                await strict.update_price(2, 12345)
            assert isinstance(info.value, CacheUnavailableError)
            assert info.value.committed is True and info.value.revision == before.revision + 1
            assert (await db.get_product(2)).price_cents == 12345  # type: ignore[union-attr]  # product 2 exists
            assert await strict.update_price(99_999, 1) is None  # no such product: nothing committed
        finally:
            await client.aclose()

    asyncio.run(main())


async def _async(value: bool) -> bool:
    return value
