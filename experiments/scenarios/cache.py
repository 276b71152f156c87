"""Cache-aside over SQLite under load: 90% reads (skewed to hot products), 10% price writes.

Each read records where its answer came from (``cache``/``db``/``fallback``/``near``)
and the product's price, which doubles as its version: writes set a product's price
to one more than the last price written, so a read returning an older price after a
newer one was acknowledged is a stale read (``cache_stale_reads``).
"""
from __future__ import annotations

import random
from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from experiments.model import POOL_SIZE, Scenario, warm_up
from experiments.workload import OpResult, attempt
from patterns.cache_aside import CacheAside, CacheConfig, FallbackMode
from patterns.catalogue_db import CatalogueDB
from patterns.common import prepare_client

N_PRODUCTS = 1000
WRITE_RATIO = 0.1
CLIENT_TIMEOUT_S = 0.25  # socket timeout: a stalled Redis costs at most this per attempt
TTL_MS = 30_000


class CacheScenario(Scenario):
    async def setup(self) -> None:
        opts = self.ctx.options
        self.db = CatalogueDB.create(self.ctx.run_dir / "catalogue.sqlite", n_products=N_PRODUCTS, seed=self.ctx.seed)
        self.client = self.ctx.topo.client(asyncio=True, socket_timeout=CLIENT_TIMEOUT_S,
                                           socket_connect_timeout=CLIENT_TIMEOUT_S, retry=Retry(NoBackoff(), 0),
                                           max_connections=POOL_SIZE)
        await prepare_client(self.client)
        await warm_up(self.client, 32)
        self.cache = CacheAside(self.client, self.db, CacheConfig(
            key_prefix=f"exp:{self.ctx.run_id}", ttl_ms=TTL_MS,
            fallback=FallbackMode(opts.get("fallback", "database+breaker")),
            breaker_fail_max=int(opts.get("breaker_fail_max", 5)),
            breaker_reset_timeout_s=float(opts.get("breaker_reset_s", 2.0))),
            rng=random.Random(self.ctx.seed))
        self.cache.add_breaker_listener(
            lambda old, new: self.ctx.writer.event("breaker", state=new, previous=old))
        self.prices: dict[int, int] = {}
        for pid in range(1, N_PRODUCTS + 1):
            product = await self.db.get_product(pid)
            assert product is not None
            self.prices[pid] = product.price_cents
        self.initial = {f"product:{pid}": price for pid, price in self.prices.items()}

    def _product(self, rng: random.Random) -> int:
        """Skewed popularity: a few hot products get most reads (Pareto)."""
        return min(N_PRODUCTS, int(rng.paretovariate(1.2)))

    async def op(self, client_id: int, rng: random.Random) -> OpResult:
        pid = self._product(rng)
        key = f"product:{pid}"
        if rng.random() < WRITE_RATIO:
            version = self.prices[pid] + 1
            self.prices[pid] = version
            return await attempt("write", {"key": key, "version": version},
                                 self.cache.update_price(pid, version))
        res = await attempt("read", {"key": key}, self.cache.read(pid))
        if res.outcome != "ok":
            return res
        product, source = res.value
        value = {"source": source, "version": product.price_cents if product else None,
                 "db_queries": 1 if source in ("db", "fallback") else 0}
        return res._replace(value=value)

    async def finish(self) -> dict[str, Any]:
        counters = self.cache.counters.snapshot()
        await self.client.aclose()
        self.db.close()
        return {"cache_counters": counters, "breaker_state": self.cache.breaker_state,
                "initial_versions": self.initial}
