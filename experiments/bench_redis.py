"""Benchmark (not a test): the workload engine against a real Redis, with redis-benchmark
on the same server in the same run as the reference.

    python -m experiments.bench_redis [--backend local|docker|auto] [--rates 1000,5000,10000,...]

Brings up the single topology, measures redis-benchmark's SET throughput (16
connections, through Toxiproxy like the lab's clients), then runs the open-loop
engine with SET operations at increasing target rates and reports achieved rate,
send lag (actual minus intended start), latency of the successful operations from
their intended time, and how many operations the engine dropped at its in-flight cap
(none with the default cap: a saturated engine shows as latency, not as a bounded p99).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from experiments.history import HistoryWriter, read_history
from experiments.stats import summarize
from experiments.workload import OpResult, Slots, WorkloadConfig, attempt, run_loop, run_workload
from topologies import api, binaries

DEFAULT_RATES = (1_000, 2_000, 5_000, 10_000, 15_000, 20_000)
CONCURRENCY = 32  # operations in flight at most (and pooled connections)
MAX_IN_FLIGHT = 1_000_000  # operations waiting or running before the engine drops one: never, in a benchmark


@contextlib.contextmanager
def bench_user(topo: api.Topology) -> Iterator[tuple[str, str]]:
    """A throwaway ACL user for redis-benchmark, which only takes a password as an argument
    (``-a``): a random one-time secret allowed SET and PING on ``key:*`` only, deleted after,
    so the lab's password never shows on a command line."""
    name, secret = f"bench-{secrets.token_hex(4)}", secrets.token_hex(16)
    with topo.node_client(topo.spec.redis_nodes[0].name, direct=True) as admin:
        admin.acl_setuser(name, enabled=True, passwords=[f"+{secret}"], keys=["key:*"],
                          commands=["+set", "+ping", "+config|get"])
        try:
            yield name, secret
        finally:
            admin.acl_deluser(name)


def redis_benchmark(topo: api.Topology, requests: int = 100_000, clients: int = 16) -> float:
    """redis-benchmark SET requests per second through the node's proxy."""
    port = topo.spec.redis_nodes[0].port
    with bench_user(topo) as (user, secret):
        out = subprocess.run([binaries.find("redis-benchmark"), "-h", "127.0.0.1", "-p", str(port), "--user", user,
                              "-a", secret, "-t", "set", "-n", str(requests), "-c", str(clients), "-q"],
                             capture_output=True, text=True, timeout=300).stdout
    match = re.search(r"SET: ([\d.]+) requests per second", out.replace("\r", "\n"))
    return float(match.group(1)) if match else float("nan")


async def engine_at(topo: api.Topology, rate: float, duration_s: float, concurrency: int = CONCURRENCY,
                    max_in_flight: int = MAX_IN_FLIGHT) -> dict[str, float | None]:
    client = topo.client(asyncio=True, socket_timeout=2, retry=Retry(NoBackoff(), 0), max_connections=concurrency)
    await asyncio.gather(*(client.ping() for _ in range(concurrency)))  # open the pool's connections now

    async def op(client_id: int, rng: random.Random) -> OpResult:
        return await attempt("set", None, client.set(f"bench:{client_id}", "x"))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.jsonl"
        with HistoryWriter(path) as writer:
            # like an app's bounded pool: waiting for a slot is latency, not a new connection
            summary = await run_workload(op, WorkloadConfig(rate=rate, duration=duration_s, clients=16,
                                                            max_in_flight=max_in_flight), writer,
                                         slots=Slots(concurrency))
        seen = summarize(read_history(path).workload)
    await client.aclose()
    lag = summary.send_lag_us
    return {"target": rate, "achieved": summary.ok / max(summary.elapsed, duration_s), "ok": summary.ok, "dropped": seen.dropped,
            "send_lag_p50_ms": lag.get_value_at_percentile(50) / 1000,
            "send_lag_p99_ms": lag.get_value_at_percentile(99) / 1000,
            "latency_p50_ms": seen.latency.p50_ms if seen.latency else None,
            "latency_p99_ms": seen.latency.p99_ms if seen.latency else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="local", choices=["auto", "local", "docker"])
    parser.add_argument("--rates", default=",".join(str(r) for r in DEFAULT_RATES))
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per rate")
    parser.add_argument("--out", default="results/bench-workload-redis.json")
    args = parser.parse_args()
    topo = api.up("single", backend=args.backend)
    try:
        reference = redis_benchmark(topo)
        rows = [run_loop(engine_at(topo, float(r), args.duration)) for r in args.rates.split(",")]
    finally:
        api.down()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"redis_benchmark_set_rps": reference, "engine": rows}, indent=2))
    print(f"redis-benchmark SET (16 connections, through Toxiproxy): {reference:,.0f} requests/s")
    print(f"{'target/s':>9} {'achieved/s':>10} {'dropped':>8} {'lag p50 ms':>10} {'lag p99 ms':>10} "
          f"{'ok p50 ms':>10} {'ok p99 ms':>10}")
    for r in rows:
        print(f"{r['target']:>9,.0f} {r['achieved']:>10,.0f} {r['dropped']:>8} {r['send_lag_p50_ms']:>10.2f} "
              f"{r['send_lag_p99_ms']:>10.2f} {r['latency_p50_ms'] or 0:>10.2f} {r['latency_p99_ms'] or 0:>10.2f}")


if __name__ == "__main__":
    main()
