"""Benchmark (not a test): the workload engine against a real Redis, with redis-benchmark
on the same server in the same run as the reference.

    python -m experiments.bench_redis [--backend local|docker|auto] [--rates 1000,5000,10000,...] [--workers 1,2]

Brings up the single topology, measures redis-benchmark's SET throughput (16
connections, through Toxiproxy like the lab's clients), then runs the open-loop
engine with SET operations at increasing target rates, in one and in several
generator processes (experiments.generator), and reports achieved rate,
send lag (actual minus intended start), latency of the successful operations from
their intended time, and how many operations the engine dropped at its in-flight cap
(none with the default cap: a saturated engine shows as latency, not as a bounded p99).
Last line: the highest rate kept on schedule (p99 send lag under 5 ms) as a ratio to
redis-benchmark's.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import resource
import secrets
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from experiments.children import Children
from experiments.generator import Source, run_in_processes
from experiments.history import HistoryWriter, read_history
from experiments.stats import summarize
from experiments.workload import OpFn, OpResult, Share, Slots, WorkloadConfig, attempt, run_loop, run_workload
from labcommon.errors import LabError
from topologies import api, binaries

DEFAULT_RATES = (1_000, 5_000, 7_500, 10_000, 12_500, 15_000)
DEFAULT_WORKERS = (1, 2)
CONCURRENCY = 32  # operations in flight at most (and pooled connections), over every generator process
CLIENTS = 16  # logical clients of the schedule (split over the generator processes)
MAX_LAG_P99_MS = 5.0  # a row "kept its schedule" below this p99 send lag
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


async def _set_op(concurrency: int) -> tuple[OpFn, Callable[[], Awaitable[dict[str, Any]]]]:
    """The benchmark's operation (a SET through the single topology's proxy) on a pool of
    ``concurrency`` connections opened now, and the function that closes it."""
    topo = api.current()
    if topo is None:
        raise LabError("bench: no topology is up")
    client = topo.client(asyncio=True, socket_timeout=2, retry=Retry(NoBackoff(), 0), max_connections=concurrency)
    await asyncio.gather(*(client.ping() for _ in range(concurrency)))  # open the pool's connections now

    async def op(client_id: int, rng: random.Random) -> OpResult:
        return await attempt("set", None, client.set(f"bench:{client_id}", "x"))

    async def close() -> dict[str, Any]:
        await client.aclose()
        return {}
    return op, close


async def set_source(config: dict[str, Any], writer: HistoryWriter, share: Share) -> Source:
    """The SET operation in a generator process (experiments.generator), on its share of the connections."""
    op, close = await _set_op(int(config["connections"]))
    return Source(op, close)


# whose CPU each row reports, by /proc/PID/comm, which the kernel cuts at 15 characters ("toxiproxy-serve")
SERVER_PROCESSES = {"toxiproxy-serve": "toxiproxy", "toxiproxy": "toxiproxy", "redis-server": "redis"}


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu() -> dict[str, float]:
    """CPU seconds so far of every Toxiproxy and redis-server process on the machine, by name
    (under the ports lock, the benchmark's topology is the only one)."""
    out: dict[str, float] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                name = (d / "comm").read_text().strip()
            except OSError:
                continue
            key = SERVER_PROCESSES.get(name)
            if key is not None:
                out[key] = out.get(key, 0.0) + _cpu_s(int(d.name))
    return out


def generator_cpu() -> float:
    """CPU seconds of this process and of its finished children (the generator processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


async def engine_at(topo: api.Topology, rate: float, duration_s: float, concurrency: int = CONCURRENCY,
                    max_in_flight: int = MAX_IN_FLIGHT, workers: int = 1) -> dict[str, float | None]:
    """One row: the open-loop engine at ``rate`` SET/s for ``duration_s`` s in ``workers`` processes,
    at most ``concurrency`` operations in flight over all of them (like an app's bounded pool:
    waiting for a slot is latency, not a new connection)."""
    config = WorkloadConfig(rate=rate, duration=duration_s, clients=CLIENTS, max_in_flight=max_in_flight)
    servers0, gen0 = server_cpu(), generator_cpu()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.jsonl"
        with HistoryWriter(path) as writer:
            if workers == 1:
                op, close = await _set_op(concurrency)
                summary = await run_workload(op, config, writer, slots=Slots(concurrency))
                await close()
            else:
                children = Children(Path(tmp), writer)
                try:
                    summary, _ = await run_in_processes(
                        children, writer, config, workers, "experiments.bench_redis:set_source",
                        {"connections": math.ceil(concurrency / workers)}, concurrency=concurrency)
                finally:
                    await asyncio.to_thread(children.stop_all)
                children.merge_histories(lambda t: None)
        servers1, gen1 = server_cpu(), generator_cpu()  # before reading the history back
        seen = summarize(read_history(path).workload)
    ops = max(summary.launched, 1)
    cpu_us = {"generator": (gen1 - gen0) * 1e6 / ops,
              **{k: (v - servers0.get(k, 0.0)) * 1e6 / ops for k, v in servers1.items()}}
    lag = summary.send_lag_us
    return {"target": rate, "workers": workers, "achieved": summary.ok / max(summary.elapsed, duration_s),
            "ok": summary.ok, "dropped": seen.dropped,
            "send_lag_p50_ms": lag.get_value_at_percentile(50) / 1000,
            "send_lag_p99_ms": lag.get_value_at_percentile(99) / 1000,
            "latency_p50_ms": seen.latency.p50_ms if seen.latency else None,
            "latency_p99_ms": seen.latency.p99_ms if seen.latency else None,
            "cpu_us_per_op": {k: round(v, 1) for k, v in cpu_us.items()}}


def best_row(rows: list[dict[str, Any]], max_lag_p99_ms: float = MAX_LAG_P99_MS) -> dict[str, Any] | None:
    """The highest achieved rate among the rows that kept their schedule (p99 send lag under
    ``max_lag_p99_ms``) and their target (achieved >= 98 % of it)."""
    kept = [r for r in rows if r["send_lag_p99_ms"] < max_lag_p99_ms and r["achieved"] >= 0.98 * r["target"]]
    return max(kept, key=lambda r: r["achieved"], default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="local", choices=["auto", "local", "docker"])
    parser.add_argument("--rates", default=",".join(str(r) for r in DEFAULT_RATES))
    parser.add_argument("--workers", default=",".join(str(w) for w in DEFAULT_WORKERS),
                        help="generator process counts to try, each at every rate")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per rate")
    parser.add_argument("--out", default="results/bench-workload-redis.json")
    args = parser.parse_args()
    topo = api.up("single", backend=args.backend)
    try:
        reference = redis_benchmark(topo)
        rows = [run_loop(engine_at(topo, float(r), args.duration, workers=int(w)))
                for w in args.workers.split(",") for r in args.rates.split(",")]
    finally:
        api.down()
    best = best_row(rows)
    ratio = best["achieved"] / reference if best and reference > 0 else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"redis_benchmark_set_rps": reference, "engine": rows, "best": best,
                                          "ratio_to_redis_benchmark": ratio,
                                          "max_send_lag_p99_ms": MAX_LAG_P99_MS}, indent=2))
    print(f"redis-benchmark SET (16 connections, through Toxiproxy): {reference:,.0f} requests/s")
    print(f"{'workers':>7} {'target/s':>9} {'achieved/s':>10} {'dropped':>8} {'lag p50 ms':>10} {'lag p99 ms':>10} "
          f"{'ok p50 ms':>10} {'ok p99 ms':>10}  CPU µs/op: generator / toxiproxy / redis")
    for r in rows:
        cpu = r["cpu_us_per_op"]
        print(f"{r['workers']:>7} {r['target']:>9,.0f} {r['achieved']:>10,.0f} {r['dropped']:>8} "
              f"{r['send_lag_p50_ms']:>10.2f} {r['send_lag_p99_ms']:>10.2f} {r['latency_p50_ms'] or 0:>10.2f} "
              f"{r['latency_p99_ms'] or 0:>10.2f}  {cpu['generator']:>5.0f} / {cpu.get('toxiproxy', 0):>5.0f} / "
              f"{cpu.get('redis', 0):>5.0f}")
    if best is None:
        print(f"generator: no rate kept its schedule (p99 send lag < {MAX_LAG_P99_MS:g} ms)")
    else:
        print(f"generator: {best['achieved']:,.0f} SET/s kept on schedule "
              f"(p99 send lag {best['send_lag_p99_ms']:.2f} ms "
              f"< {MAX_LAG_P99_MS:g} ms, {best['workers']} process(es)) = {ratio:.2f}x redis-benchmark")


if __name__ == "__main__":
    main()
