"""Benchmark the open-loop scheduler with a no-op operation.

``python -m experiments.bench_workload [--duration S] [--rates R,R,...]``
prints achieved vs target rate and send lag (ms) at increasing target rates.
The history is really written (to a temporary file), as in a run.
"""

from __future__ import annotations

import argparse
import sys

from .workload import Arrivals, BenchResult, benchmark_rate

DEFAULT_RATES = (1_000, 5_000, 10_000, 20_000, 30_000, 40_000)


def bench(rates: tuple[float, ...] = DEFAULT_RATES, duration: float = 3.0,
          clients: int = 16, arrivals: Arrivals = "constant") -> list[BenchResult]:
    """One :func:`benchmark_rate` row per target rate (ops/s)."""
    return [benchmark_rate(r, duration, clients, arrivals) for r in rates]


def format_table(rows: list[BenchResult]) -> str:
    head = (f"{'target/s':>9} {'achieved/s':>10} {'ratio':>6} {'overload':>8} "
            f"{'lag p50 ms':>10} {'lag p99 ms':>10} {'lag max ms':>10}")
    out = [head, "-" * len(head)]
    for r in rows:
        out.append(f"{r.target_rate:>9,.0f} {r.achieved_rate:>10,.0f} "
                   f"{r.achieved_rate / r.target_rate:>6.2f} {r.overloaded:>8} "
                   f"{r.send_lag_p50_ms:>10.2f} {r.send_lag_p99_ms:>10.2f} "
                   f"{r.send_lag_max_ms:>10.2f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per rate")
    ap.add_argument("--rates", default=",".join(str(r) for r in DEFAULT_RATES),
                    help="comma-separated target rates, ops/s")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--arrivals", choices=["constant", "poisson"], default="constant")
    a = ap.parse_args(argv)
    rates = tuple(float(x) for x in a.rates.split(","))
    print(f"no-op workload, {a.duration:g} s per rate, {a.clients} clients, {a.arrivals} arrivals")
    print(format_table(bench(rates, a.duration, a.clients, a.arrivals)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
