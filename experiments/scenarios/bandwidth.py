"""A thin pipe: cache-aside reads of realistic values (1 KiB ... 1 MiB) while the primary's link
is limited by Toxiproxy's ``bandwidth`` toxic (server to client), against a database that
serves the same value from SQLite plus a 5 ms round trip.

A value takes ``size / rate`` to cross the limited link; once that is longer than the
database's own read time, reading through the cache costs more than skipping it: the point
at which the cache stops helping. Toxiproxy limits every *connection* on its own (each has its
own toxic), so the figure is per connection.

Each read: GET from Redis (client timeout 0.5 s); a miss reads the database and fills the
cache; an error falls back to the database. The op records where the value came from. The
database's read time is measured before the load starts (``database_ms`` in the final state).
Offered load falls with the value size (``rate_factor``) so the machine, not the pipe, is never
the bottleneck in the baseline.
"""
from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis

from experiments import faultplans
from experiments.model import GENERIC_CHECKS, HYPOTHESIS, Experiment, Scenario, app_client
from experiments.scenarios.cache import HYPOTHESIS as CACHE_HYPOTHESIS
from experiments.scenarios.cache import CacheScenario
from experiments.scenarios.cache import checks as cache_checks
from experiments.workload import OpResult
from faults import kinds
from topologies.api import Topology

N_VALUES = 20
TIMEOUT_S = 0.5
DB_LATENCY_MS = 5.0  # the database's round trip (a remote database, not a local file)
RATE_KB_S = 1000  # the link, per connection (Toxiproxy's KB: 1000 bytes)
SIZES = {"1k": 1024, "16k": 16 * 1024, "128k": 128 * 1024, "1m": 1024 * 1024}
RATE_FACTORS = {"1k": 0.5, "16k": 0.5, "128k": 0.25, "1m": 0.1}  # x the profile's rate


class BlobStore:
    """The database: ``N_VALUES`` blobs in SQLite, read on a small thread pool, each read paying
    ``DB_LATENCY_MS`` first (one connection per worker thread)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, data BLOB)")
            conn.executemany("INSERT OR REPLACE INTO blobs VALUES (?, ?)",
                             [(i, os.urandom(size)) for i in range(N_VALUES)])
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="blobdb")
        self.local = threading.local()

    def _read(self, i: int) -> bytes:
        time.sleep(DB_LATENCY_MS / 1000)
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = sqlite3.connect(self.path, check_same_thread=False)
        return conn.execute("SELECT data FROM blobs WHERE id = ?", (i,)).fetchone()[0]

    async def get(self, i: int) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._read, i)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class BigValueScenario(Scenario):
    async def setup(self) -> None:
        self.size = SIZES[str(self.ctx.options["size"])]
        self.db = BlobStore(self.ctx.run_dir / "blobs.sqlite", self.size)
        self.client = await app_client(self.ctx, TIMEOUT_S, warm=16)
        self.prefix = f"blob:{self.ctx.run_id}"
        timings = []
        for i in range(30):
            t = time.perf_counter()
            await self.db.get(i % N_VALUES)
            timings.append((time.perf_counter() - t) * 1000)
        timings.sort()
        self.database_ms = {"p50": statistics.median(timings), "p99": timings[-1]}

    def fault_key(self) -> str:
        return f"{self.prefix}:0"

    async def op(self, client_id: int, rng: random.Random) -> OpResult:
        i = rng.randrange(N_VALUES)
        key = f"{self.prefix}:{i}"
        try:
            value = await self.client.get(key)
            source = "cache"
            if value is None:
                value, source = await self.db.get(i), "db"
                try:
                    await self.client.set(key, value)
                except redis.RedisError:
                    pass  # the read is served; the fill failed
        except redis.RedisError as exc:
            value, source = await self.db.get(i), f"fallback:{type(exc).__name__}"
        return OpResult("read", {"key": key}, {"source": source, "bytes": len(value)})

    async def finish(self) -> dict[str, Any]:
        await self.client.aclose()
        self.db.close()
        return {"database_ms": self.database_ms}


def _thin_link(topo: Topology, sc: Scenario) -> kinds.Fault:
    return kinds.make("bandwidth", faultplans.primary_of(topo, sc.fault_key()), rate=RATE_KB_S,
                        direction="downstream")


def _experiment(key: str) -> Experiment:
    size = SIZES[key]
    check = {"name": "cache_vs_database", "params": {"value_bytes": size, "rate_kb_s": RATE_KB_S}}
    return Experiment(
        name=f"bandwidth-{key}", summary=f"cache-aside reads of {key.upper()}B values while the primary's link is "
        f"limited to {RATE_KB_S} KB/s per connection: throughput, p99, timeouts; does the cache still help?",
        pattern="bandwidth", topology="single", topologies=("sentinel",), scenario=BigValueScenario,
        fault=_thin_link, fault_label=f"limit the primary's link to {RATE_KB_S} KB/s per connection",
        hypothesis={**HYPOTHESIS, "p99_max_ms": 100.0}, checks=[*GENERIC_CHECKS, check],
        options={"size": key}, concurrency=32, rate_factor=RATE_FACTORS[key])


HOTKEY_RATE_KB_S = 2  # product values are ~100 bytes: 2 KB/s per connection puts ~50 ms on each read


def _hot_node_thin(topo: Topology, sc: Scenario) -> kinds.Fault:
    return kinds.make("bandwidth", faultplans.primary_of(topo, sc.fault_key()), rate=HOTKEY_RATE_KB_S,
                        direction="downstream")


EXPERIMENTS = [
    *[_experiment(k) for k in SIZES],
    Experiment(name="hotkey-bandwidth", summary=f"cache-aside on the Cluster with a hot key, the link of the node "
               f"serving it limited to {HOTKEY_RATE_KB_S} KB/s per connection (saturated)", pattern="cache-aside",
               topology="cluster", scenario=CacheScenario, fault=_hot_node_thin,
               fault_label=f"limit the hot key's node link to {HOTKEY_RATE_KB_S} KB/s per connection",
               hypothesis=dict(CACHE_HYPOTHESIS), checks=[*GENERIC_CHECKS, *cache_checks()],
               options={"fallback": "database+breaker"}),
]
