"""Cache-aside over SQLite under load: 90% reads (skewed to hot products), 10% price writes.

Each read records where its answer came from (``cache``/``db``/``fallback``/``near``)
and the product's revision; each write records the revision the database committed
(revisions follow the database's commit order) and whether its invalidation was
acknowledged. The checks judge staleness against that order (``cache_stale_reads``:
the TTL bound; ``cache_read_your_writes``: in-process read-your-writes).
"""
from __future__ import annotations

import random
from typing import Any

from experiments import faultplans
from experiments.model import (
    GENERIC_CHECKS,
    SERVED_THROUGH,
    Experiment,
    PatternLoad,
    Scenario,
    app_client,
)
from experiments.workload import OpResult, attempt
from faults import kinds
from patterns.cache_aside import CacheAside, CacheConfig, FallbackMode, InvalidationFailed
from patterns.products_db import ProductsDB

N_PRODUCTS = 1000
WRITE_RATIO = 0.1
CLIENT_TIMEOUT_S = 0.25  # socket timeout: a stalled Redis costs at most this per attempt
TTL_MS = 5_000  # short enough that the staleness bound it sets can be exceeded within a run
TTL_JITTER_RATIO = 0.1


class CacheScenario(Scenario):
    keys_in_prefix = True

    async def setup(self) -> None:
        opts = self.ctx.options
        self.db = ProductsDB.create(self.ctx.run_dir / "products.sqlite", n_products=N_PRODUCTS, seed=self.ctx.seed)
        self.client = await app_client(self.ctx, CLIENT_TIMEOUT_S)
        self.cache = CacheAside(self.client, self.db, CacheConfig(
            key_prefix=f"{self.ctx.topo.key_prefix}exp:{self.ctx.run_id}", ttl_ms=TTL_MS,
            ttl_jitter_ratio=TTL_JITTER_RATIO,
            fallback=FallbackMode(opts.get("fallback", "database+breaker")),
            breaker_fail_max=int(opts.get("breaker_fail_max", 5)),
            breaker_reset_timeout_s=float(opts.get("breaker_reset_s", 2.0)),
            near_ttl_ms=int(opts.get("near_ms", 0))),
            rng=random.Random(self.ctx.seed))

        def on_breaker(old: str, new: str) -> None:
            self.ctx.writer.event("breaker", state=new, previous=old)
        self.cache.add_breaker_listener(on_breaker)
        self.prices: dict[int, int] = {}
        for pid in range(1, N_PRODUCTS + 1):
            product = await self.db.get_product(pid)
            assert product is not None
            self.prices[pid] = product.price_cents

    def fault_key(self) -> str:
        """The hottest product's key: on the Cluster, node faults hit the primary serving it."""
        return self.cache.key(1)

    def _product(self, rng: random.Random) -> int:
        """Skewed popularity: a few hot products get most reads (Pareto)."""
        return min(N_PRODUCTS, int(rng.paretovariate(1.2)))

    async def op(self, client_id: int, rng: random.Random) -> OpResult:
        pid = self._product(rng)
        key = f"product:{pid}"
        if rng.random() < WRITE_RATIO:
            version = self.prices[pid] + 1
            self.prices[pid] = version
            return await attempt("write", {"key": key, "version": version}, self._write(pid, version))
        res = await attempt("read", {"key": key}, self.cache.read(pid), read=True)
        if res.outcome != "ok":
            return res
        product, source = res.value
        value = {"source": source, "version": product.price_cents if product else None,
                 "revision": getattr(product, "revision", None),
                 "db_queries": 1 if source in ("db", "fallback") else 0}
        return res._replace(value=value)

    async def _write(self, pid: int, price: int) -> dict[str, Any]:
        """A price change: the revision the database committed and whether the cache was invalidated.
        A write that committed and then could not invalidate (``FallbackMode.NONE``) is a write that
        happened, not a failed one."""
        try:
            return {"revision": await self.cache.update_price(pid, price), "invalidated": True}
        except InvalidationFailed as exc:
            return {"revision": exc.revision, "invalidated": False}

    async def finish(self) -> dict[str, Any]:
        counters = self.cache.counters.snapshot()
        await self.client.aclose()
        self.db.close()
        return {"cache_counters": counters, "breaker_state": self.cache.breaker_state}


def staleness_bound_s(near_ms: int = 0) -> float:
    """What cache-aside promises even when an invalidation fails or a failover loses it:
    a value lives at most its TTL with jitter, plus the near cache's TTL (seconds)."""
    return TTL_MS * (1 + TTL_JITTER_RATIO) / 1000 + near_ms / 1000


def checks(near_ms: int = 0) -> list[Any]:
    return ["cache_fallback", {"name": "cache_stale_reads", "params": {"max_staleness_s": staleness_bound_s(near_ms)}},
            "cache_read_your_writes"]


# A fallback promises to keep serving while Redis is unavailable (each request pays at most the client timeout
# before the database answers), not the cache's latency.
HYPOTHESIS = {**SERVED_THROUGH, "during": {"availability_min": 0.99, "p99_max_ms": 500.0}}
CHECKS = checks()
LOAD = PatternLoad(pattern="cache-aside", scenario=CacheScenario, checks=CHECKS,
                   options={"fallback": "database+breaker"}, hypothesis=HYPOTHESIS)


def _squeeze(policy: str) -> Any:
    """Fault plan: shrink the primary's maxmemory to 80 % of what it uses now (MiB)."""
    def plan(topo: Any, sc: Scenario) -> Any:
        node = faultplans.primary_of(topo, sc.fault_key())
        with topo.node_client(node, direct=True) as c:
            used = int(c.info("memory")["used_memory"])
        return kinds.make("memory", node, maxmemory_mb=max(1.0, round(used * 0.8 / 1048576, 3)), policy=policy)
    return plan


def _variant(name: str, summary: str, fault: Any, label: str, options: dict[str, Any],
             topology: str = "single") -> Experiment:
    return Experiment(name=name, summary=summary, pattern="cache-aside", topology=topology,
                      topologies=("single", "sentinel", "cluster"), scenario=CacheScenario, fault=fault,
                      fault_label=label, hypothesis=dict(HYPOTHESIS),
                      checks=[*GENERIC_CHECKS, *checks(int(options.get("near_ms", 0)))], options=options)


EXPERIMENTS = [
    # Showcase: degradation. Redis down (the only node killed) with no fallback, DB fallback, fallback + breaker.
    *[_variant(f"degradation-{key}", f"cache-aside with Redis down, fallback {mode}", faultplans.kill_primary,
               "Redis down (node killed)", {"fallback": mode})
      for key, mode in (("none", "none"), ("db", "database"), ("db-breaker", "database+breaker"))],
    # Showcase: circuit breaking. A slow primary (latency above the client timeout), breaker off vs on.
    *[_variant(f"breaker-{key}", f"cache-aside with a slow primary, fallback {mode}", faultplans.latency_primary,
               f"add {faultplans.LATENCY_MS} ms latency to the primary", {"fallback": mode})
      for key, mode in (("off", "database"), ("on", "database+breaker"))],
    # Showcase: a hot key on the Cluster (Pareto reads: product 1 is the hottest), the primary
    # serving it killed; load per node and availability without and with a 1 s near cache.
    *[_variant(f"hotkey-{key}", f"cache-aside on the Cluster with a hot key, {label}", faultplans.kill_primary,
               "kill the primary serving the hot key", {"fallback": "database+breaker", "near_ms": near},
               topology="cluster")
      for key, label, near in (("plain", "no relief", 0), ("near-cache", "1 s in-process near cache", 1000))],
    # Showcase: memory limits. maxmemory squeezed under the cache, LRU eviction vs noeviction.
    *[_variant(f"memory-{policy}", f"cache-aside with maxmemory squeezed, policy {policy}", _squeeze(policy),
               f"maxmemory to 80 % of use, {policy}", {"fallback": "database+breaker"})
      for policy in ("allkeys-lru", "noeviction")],
    Experiment(
        name="cache-primary-kill",
        summary="cache-aside (DB fallback + breaker) while the Sentinel primary is killed: "
                "does fallback keep serving, how long is the failover, how much extra DB load?",
        pattern="cache-aside", topology="sentinel", topologies=("single", "cluster"),
        scenario=CacheScenario, fault=faultplans.kill_primary, fault_label="kill the primary",
        hypothesis=dict(HYPOTHESIS),
        checks=[*GENERIC_CHECKS, *CHECKS],
        options={"fallback": "database+breaker"},
    ),
]
