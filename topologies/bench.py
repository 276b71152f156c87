"""Benchmark (not a test): time from `up` to healthy, and from a primary kill to the first
acknowledged write, per topology and backend.

    python -m topologies.bench [--backend auto|local|docker|both] [--runs 3]

Kill-to-write is measured from the moment the kill command returns to the first SET
acknowledged through the application's client (Sentinel `master_for` / `RedisCluster`),
retrying every 10 ms with 200 ms socket timeouts. It is compared with the configured
detection time (Sentinel down-after-milliseconds, cluster-node-timeout).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import redis

from topologies import api, dockerd
from topologies.errors import LabError
from topologies.spec import TOPOLOGIES

WRITE_DEADLINE_S = 60.0


def _first_write_after_kill(topo: api.Topology) -> float:
    """Seconds from killing the current primary to the first acknowledged write."""
    client = topo.client(socket_timeout=0.2, socket_connect_timeout=0.2)
    key = "bench:failover"
    if topo.name == "cluster":
        victim_port = client.get_node_from_key(key).port
        victim = next(n.name for n in topo.spec.redis_nodes if n.port == victim_port)
    else:
        victim = topo.primary() or "redis-1"
    topo.kill(victim)
    killed = time.monotonic()
    while time.monotonic() - killed < WRITE_DEADLINE_S:
        try:
            if client.set(key, "x"):
                return time.monotonic() - killed
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.01)
    raise LabError(f"no acknowledged write within {WRITE_DEADLINE_S:.0f} s of killing {victim}")


def run(backends: list[str], runs: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for backend in backends:
        for name in TOPOLOGIES:
            ups, writes = [], []
            for _ in range(runs):
                started = time.monotonic()
                topo = api.up(name, backend=backend)
                ups.append(time.monotonic() - started)
                try:
                    if name in ("sentinel", "cluster"):  # topologies that fail over
                        writes.append(_first_write_after_kill(topo))
                finally:
                    api.down()
            opts = topo.spec.options
            detect = {"sentinel": opts.down_after_ms, "cluster": opts.node_timeout_ms}.get(name)
            rows.append({
                "backend": backend, "topology": name, "runs": runs,
                "up_to_healthy_s_median": round(statistics.median(ups), 2), "up_to_healthy_s_max": round(max(ups), 2),
                "kill_to_first_write_s_median": round(statistics.median(writes), 2) if writes else None,
                "kill_to_first_write_s_max": round(max(writes), 2) if writes else None,
                "detection_time_s": detect / 1000 if detect else None,
            })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="auto", choices=["auto", "local", "docker", "both"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="results/bench-topologies.json")
    args = parser.parse_args()
    started_daemon = False
    if args.backend in ("docker", "both"):
        started_daemon = dockerd.ensure_running()
    backends = ["local", "docker"] if args.backend == "both" else [api.resolve_backend(args.backend)]
    try:
        rows = run(backends, args.runs)
    finally:
        api.down()
        if started_daemon:
            dockerd.stop_if_owned()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print("| backend | topology | up→healthy median (max) s | kill→first write median (max) s | detection s |")
    print("|---|---|---|---|---|")
    for r in rows:
        kw = (f"{r['kill_to_first_write_s_median']} ({r['kill_to_first_write_s_max']})"
              if r["kill_to_first_write_s_median"] is not None else "n/a")
        print(f"| {r['backend']} | {r['topology']} | {r['up_to_healthy_s_median']} ({r['up_to_healthy_s_max']}) "
              f"| {kw} | {r['detection_time_s'] or 'n/a'} |")


if __name__ == "__main__":
    main()
