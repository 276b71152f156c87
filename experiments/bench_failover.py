"""Benchmark (not a test): time from `up` to healthy, and from a fault on the primary to the
first acknowledged write, split into Redis's share and the client's, for the lab's own
clients and a plain redis-py reference client, on the same topology in the same run.

    python -m experiments.bench_failover [--backend auto|local|docker|both] [--runs 3] [--fault kill|pause|machine]
                               [--topology sentinel ...] [--client plain ...] [--together]

For every client (``experiments.failover_probe.DEFAULT_CLIENTS``) and run, a freshly
started topology (timed: up -> healthy) gets the fault on the primary serving the bench
key while the client writes every 10 ms from its own process. Per client: fault (the
kill/pause command returned) -> first acknowledged write, split into "Redis needed X s
to promote" (the first Sentinel ``+switch-master`` / the Cluster replica answering ROLE
master) and "the client needed Y s more". Each client faces faults of its own so that
no client's CPU slows another on a 2-core machine; ``--together`` puts them all on the
same faults instead.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from experiments import failover_probe
from topologies import api, dockerd, topology_kinds
from topologies.outage import spread
from topologies.spec import TOPOLOGIES

FAILS_OVER = tuple(t for t in TOPOLOGIES if topology_kinds.get(t).fails_over)  # the others: up time only

FAULT_TITLES = {"kill": "SIGKILL of the primary", "pause": "SIGSTOP of the primary (hung, connections open)",
                "machine": "SIGKILL of the primary and sentinel-1 (one machine)"}


def run(backends: list[str], runs: int, topologies: list[str], clients: list[str], seed: int,
        hold_s: float, fault: str = "kill", together: bool = False) -> dict[str, Any]:
    """Per backend and topology, ``runs`` rounds; in each round every client faces a fault of its
    own on a freshly started topology (``together``: all clients on one fault)."""
    rng = random.Random(seed)
    ups: list[dict[str, Any]] = []
    failovers: list[dict[str, Any]] = []
    groups = [clients] if together else [[c] for c in clients]
    for backend in backends:
        for name in topologies:
            up_s: list[float] = []
            trials: list[dict[str, Any]] = []
            for _ in range(runs):
                for group in groups if name in FAILS_OVER else [[]]:
                    started = time.monotonic()
                    topo = api.up(name, backend=backend)
                    up_s.append(time.monotonic() - started)
                    try:
                        if group:
                            trials.append(failover_probe.failover_trial(topo, group, hold_s=hold_s, rng=rng,
                                                                        fault=fault))
                            print(json.dumps(_trial_line(backend, name, trials[-1])), flush=True)
                    finally:
                        api.down()
            detect = topo.kind.detection_ms(topo.spec.options)
            ups.append({"backend": backend, "topology": name, "runs": len(up_s),
                        "up_to_healthy_s_median": round(statistics.median(up_s), 2),
                        "up_to_healthy_s_max": round(max(up_s), 2),
                        "detection_time_s": detect / 1000 if detect else None})
            if trials:
                failovers.append(summarize(backend, name, trials, clients, detect))
    return {"up": ups, "failover": failovers}


def _trial_line(backend: str, name: str, trial: dict[str, Any]) -> dict[str, Any]:
    """One trial on one line: per client its outage and client share (s)."""
    return {"backend": backend, "topology": name, "victim": trial["victim"],
            "promoted_s": None if trial["promoted_t"] is None else round(trial["promoted_t"] - trial["kill_t"], 3),
            **{c: {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                   if k in ("outage_s", "client_s", "failed_attempts", "errors", "error")}
               for c, r in trial["clients"].items()}}


def summarize(backend: str, name: str, trials: list[dict[str, Any]], clients: list[str],
              detect_ms: int | None) -> dict[str, Any]:
    """Median and range over the trials, per client (each over the faults it faced), and its
    median client share minus the reference client's."""
    per_client: dict[str, Any] = {}
    for c in clients:
        faced = [t for t in trials if c in t["clients"]]
        rows = [t["clients"][c] for t in faced]
        per_client[c] = {"description": failover_probe.CLIENTS[c],
                         "outage_s": spread([r.get("outage_s") for r in rows]),
                         "server_s": spread([_server_s(t) for t in faced]),
                         "client_s": spread([r.get("client_s") for r in rows]),
                         "errors": [r.get("error") for r in rows if r.get("error")]}
    ref = per_client.get(failover_probe.REFERENCE, {}).get("client_s", {}).get("median")
    for r in per_client.values():
        mine = r["client_s"]["median"]
        r["minus_reference_s"] = None if ref is None or mine is None else round(mine - ref, 3)
    return {"backend": backend, "topology": name, "trials": len(trials),
            "detection_time_s": detect_ms / 1000 if detect_ms else None,
            "server_s": spread([_server_s(t) for t in trials]),
            "clients": per_client, "trial_details": trials}


def _server_s(trial: dict[str, Any]) -> float | None:
    return None if trial["promoted_t"] is None else trial["promoted_t"] - trial["kill_t"]


def _fmt(s: dict[str, Any] | None) -> str:
    if not s or s["median"] is None:
        return "n/a"
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def print_tables(result: dict[str, Any]) -> None:
    if result.get("fault", "kill") == "kill":
        print("\n| backend | topology | up→healthy median (max) s | detection s |")
        print("|---|---|---|---|")
        for r in result["up"]:
            print(f"| {r['backend']} | {r['topology']} | {r['up_to_healthy_s_median']} ({r['up_to_healthy_s_max']}) "
                  f"| {r['detection_time_s'] or 'n/a'} |")
    if not result["failover"]:
        return
    what = FAULT_TITLES[result.get("fault", "kill")]
    together = "every client on the same faults" if result.get("together") else "each client alone on its own faults"
    print(f"\n{what} → first acknowledged write, median (min-max) s over {result.get('runs', '?')} faults per client, "
          f"{together}.")
    print("Redis's share: fault → new primary announced (+switch-master / replica ROLE master); "
          "the client's: the rest.")
    print("\n| backend | topology | client | fault → first ack s | Redis promoted s | client share s "
          "| client share minus plain's s |")
    print("|---|---|---|---|---|---|---|")
    for f in result["failover"]:
        for c, r in f["clients"].items():
            diff = "—" if c == failover_probe.REFERENCE or r["minus_reference_s"] is None \
                else f"{r['minus_reference_s']:+.2f}"
            print(f"| {f['backend']} | {f['topology']} | {c} | {_fmt(r['outage_s'])} | {_fmt(r['server_s'])} "
                  f"| {_fmt(r['client_s'])} | {diff} |")
    print()
    for f in result["failover"]:
        shares = ", ".join(f"{c} {r['client_s']['median']:.2f} s" if r["client_s"]["median"] is not None
                           else f"{c} n/a" for c, r in f["clients"].items())
        server = f["server_s"]["median"]
        print(f"{f['backend']} {f['topology']}: Redis needed {server:.2f} s to promote; clients needed "
              f"{shares} more (medians of {f['trials']} faults)." if server is not None
              else f"{f['backend']} {f['topology']}: no promotion was announced.")
    for f in result["failover"]:
        for c, r in f["clients"].items():
            for err in r["errors"]:
                print(f"warning: {f['backend']} {f['topology']} client {c}: {err}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="auto", choices=["auto", "local", "docker", "both"])
    parser.add_argument("--runs", type=int, default=3,
                        help="faults per client (each on a freshly started topology)")
    parser.add_argument("--topology", action="append", choices=list(TOPOLOGIES),
                        help="only these topologies (repeatable; default: all)")
    parser.add_argument("--client", action="append", choices=list(failover_probe.CLIENTS),
                        help=f"only these clients (repeatable; default: {' '.join(failover_probe.DEFAULT_CLIENTS)})")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random delay before each kill")
    parser.add_argument("--hold", type=float, default=1.0,
                        help="the kill comes a random 0..HOLD s after every client writes (s)")
    parser.add_argument("--fault", default="kill", choices=list(failover_probe.FAULTS),
                        help="kill: SIGKILL the primary (connections reset); pause: SIGSTOP it (connections hang); "
                             "machine: SIGKILL the primary and sentinel-1 together (Sentinel only)")
    parser.add_argument("--together", action="store_true",
                        help="all clients on the same faults (their CPU then competes: 2 cores) instead of each alone")
    parser.add_argument("--out", default="results/bench-topologies.json")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs {args.runs}: accepted: 1 or more")
    topologies = args.topology or (["sentinel"] if args.fault == "machine" else list(TOPOLOGIES))
    if args.fault == "machine" and topologies != ["sentinel"]:
        parser.error("--fault machine kills a Sentinel too: accepted only with --topology sentinel")
    started_daemon = False
    if args.backend in ("docker", "both"):
        started_daemon = dockerd.ensure_running()
    backends = ["local", "docker"] if args.backend == "both" else [api.resolve_backend(args.backend)]
    clients = args.client or list(failover_probe.DEFAULT_CLIENTS)
    try:
        result = run(backends, args.runs, topologies, clients, args.seed, args.hold, args.fault, args.together)
    finally:
        api.down()
        if started_daemon:
            dockerd.stop_if_owned()
    result.update(fault=args.fault, runs=args.runs, together=args.together, clients=clients)
    result["command"] = "python -m experiments.bench_failover " + " ".join(
        f"--{k} {v}" for k, v in (("backend", args.backend), ("runs", args.runs), ("fault", args.fault),
                                  ("seed", args.seed), ("hold", args.hold))) + (" --together" if args.together else "")
    result["date"] = time.strftime("%Y-%m-%d")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print_tables(result)


if __name__ == "__main__":
    main()
