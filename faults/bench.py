"""Benchmark (not a test): what Toxiproxy itself costs, and how faithful injected latency is.

    python -m faults.bench [--backend auto|local|docker] [--pings 5000]

On the single topology, with sequential PINGs from one client:
  1. latency p50/p99 direct vs through Toxiproxy with no toxic, and the throughput ratio;
  2. time from `inject` returning to the first PING that shows the injected latency;
  3. accuracy of injected latency: measured median minus (no-toxic median + injected).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import redis

from faults import kinds
from faults.injector import FaultInjector
from topologies import api


def _pings(c: redis.Redis, n: int) -> list[float]:
    """Latencies of ``n`` sequential PINGs, microseconds."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        c.ping()
        out.append((time.perf_counter() - t) * 1e6)
    return out


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def run(backend: str, pings: int) -> dict[str, object]:
    topo = api.up("single", backend=backend)
    try:
        direct = topo.node_client("redis-1", direct=True)
        proxied = topo.client()
        _pings(direct, 200), _pings(proxied, 200)  # warm up
        t = time.perf_counter()
        d = _pings(direct, pings)
        d_s = time.perf_counter() - t
        t = time.perf_counter()
        p = _pings(proxied, pings)
        p_s = time.perf_counter() - t
        result: dict[str, object] = {
            "backend": topo.backend.name, "pings": pings,
            "direct_p50_us": round(_pct(d, 0.5), 1), "direct_p99_us": round(_pct(d, 0.99), 1),
            "proxied_p50_us": round(_pct(p, 0.5), 1), "proxied_p99_us": round(_pct(p, 0.99), 1),
            "throughput_ratio_proxied_over_direct": round((pings / p_s) / (pings / d_s), 3),
        }
        inj = FaultInjector(topo)
        delays = []
        for _ in range(10):
            fault = kinds.make("latency", "redis-1", latency_ms=100)
            inj.inject(fault)
            returned = time.perf_counter()
            while True:
                t = time.perf_counter()
                proxied.ping()
                if time.perf_counter() - t >= 0.09:
                    delays.append((t - returned) * 1000)
                    break
            inj.heal(fault)
        result["inject_to_observable_ms_median"] = round(statistics.median(delays), 3)
        result["inject_to_observable_ms_max"] = round(max(delays), 3)
        base = statistics.median(p) / 1000
        accuracy = {}
        for latency_ms in (10, 50, 200):
            with inj.active(kinds.make("latency", "redis-1", latency_ms=latency_ms)):
                measured = statistics.median(_pings(proxied, 20)) / 1000
            accuracy[str(latency_ms)] = round(measured - base - latency_ms, 2)
        result["latency_error_ms_by_injected_ms"] = accuracy
        return result
    finally:
        api.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="auto", choices=["auto", "local", "docker"])
    parser.add_argument("--pings", type=int, default=5000)
    parser.add_argument("--out", default="results/bench-faults.json")
    args = parser.parse_args()
    result = run(api.resolve_backend(args.backend), args.pings)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
