"""Benchmark (not a test): time from `up` to healthy, and from a primary kill to the first
acknowledged write, split into Redis's share and the client's, for the lab's own clients
and a plain redis-py reference client facing the same kill.

    python -m topologies.bench [--backend auto|local|docker|both] [--runs 3] [--topology sentinel ...]

Each run brings a topology up (timed), then kills the primary serving the bench key
while every client of ``topologies.failover_probe.CLIENTS`` writes, each in its own
process. Per client: kill (the kill command returned) -> first acknowledged write,
and its split: "Redis needed X s to promote" (first Sentinel ``+switch-master`` /
the Cluster replica reporting ROLE master) and "clients needed Y s more".
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from topologies import api, dockerd, failover_probe
from topologies.outage import spread
from topologies.spec import TOPOLOGIES


FAULT_TITLES = {"kill": "SIGKILL of the primary", "pause": "SIGSTOP of the primary (hung, connections open)",
                "machine": "SIGKILL of the primary and sentinel-1 (one machine)"}


def run(backends: list[str], runs: int, topologies: list[str], clients: list[str], seed: int,
        hold_s: float, fault: str = "kill") -> dict[str, Any]:
    rng = random.Random(seed)
    ups: list[dict[str, Any]] = []
    failovers: list[dict[str, Any]] = []
    for backend in backends:
        for name in topologies:
            up_s: list[float] = []
            trials: list[dict[str, Any]] = []
            for _ in range(runs):
                started = time.monotonic()
                topo = api.up(name, backend=backend)
                up_s.append(time.monotonic() - started)
                try:
                    if name in ("sentinel", "cluster"):  # topologies that fail over
                        trials.append(failover_probe.failover_trial(topo, clients, hold_s=hold_s, rng=rng,
                                                                    fault=fault))
                        print(json.dumps(_trial_line(backend, name, trials[-1])), flush=True)
                finally:
                    api.down()
            opts = topo.spec.options
            detect = {"sentinel": opts.down_after_ms, "cluster": opts.node_timeout_ms}.get(name)
            ups.append({"backend": backend, "topology": name, "runs": runs,
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
    """Median and range over the trials, per client; and each client minus the reference on the same kill."""
    ref = failover_probe.REFERENCE
    per_client: dict[str, Any] = {}
    for c in clients:
        rows = [t["clients"][c] for t in trials]
        diffs = [r["outage_s"] - t["clients"][ref]["outage_s"]
                 if r.get("outage_s") is not None and t["clients"].get(ref, {}).get("outage_s") is not None else None
                 for r, t in zip(rows, trials)] if ref in clients else []
        per_client[c] = {"description": failover_probe.CLIENTS[c],
                         "outage_s": spread([r.get("outage_s") for r in rows]),
                         "client_s": spread([r.get("client_s") for r in rows]),
                         "minus_reference_s": spread(diffs) if diffs else None,
                         "errors": [r.get("error") for r in rows if r.get("error")]}
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
    print(f"\n{what} → first acknowledged write, median (min-max) s over the trials; every client faced the same "
          "faults.")
    print("Redis's share: fault → new primary announced (+switch-master / replica ROLE master); the client's: the rest.")
    print("\n| backend | topology | client | fault → first ack s | Redis promoted s | client share s "
          "| minus plain, same fault s |")
    print("|---|---|---|---|---|---|---|")
    for f in result["failover"]:
        for c, r in f["clients"].items():
            print(f"| {f['backend']} | {f['topology']} | {c} | {_fmt(r['outage_s'])} | {_fmt(f['server_s'])} "
                  f"| {_fmt(r['client_s'])} | {_fmt(r['minus_reference_s']) if c != failover_probe.REFERENCE else '—'} |")
    print()
    for f in result["failover"]:
        shares = ", ".join(f"{c} {r['client_s']['median']:.2f} s" if r["client_s"]["median"] is not None
                           else f"{c} n/a" for c, r in f["clients"].items())
        server = f["server_s"]["median"]
        print(f"{f['backend']} {f['topology']}: Redis needed {server:.2f} s to promote; clients needed "
              f"{shares} more (medians of {f['trials']} kills)." if server is not None
              else f"{f['backend']} {f['topology']}: no promotion was announced.")
    for f in result["failover"]:
        for c, r in f["clients"].items():
            for err in r["errors"]:
                print(f"warning: {f['backend']} {f['topology']} client {c}: {err}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="auto", choices=["auto", "local", "docker", "both"])
    parser.add_argument("--runs", type=int, default=3, help="topology starts, each followed by one primary kill")
    parser.add_argument("--topology", action="append", choices=list(TOPOLOGIES),
                        help="only these topologies (repeatable; default: all)")
    parser.add_argument("--client", action="append", choices=list(failover_probe.CLIENTS),
                        help="only these clients (repeatable; default: all)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random delay before each kill")
    parser.add_argument("--hold", type=float, default=1.0,
                        help="the kill comes a random 0..HOLD s after every client writes (s)")
    parser.add_argument("--fault", default="kill", choices=list(failover_probe.FAULTS),
                        help="kill: SIGKILL the primary (connections reset); pause: SIGSTOP it (connections hang); "
                             "machine: SIGKILL the primary and sentinel-1 together (Sentinel only)")
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
    clients = args.client or list(failover_probe.CLIENTS)
    try:
        result = run(backends, args.runs, topologies, clients, args.seed, args.hold,
                     args.fault)
    finally:
        api.down()
        if started_daemon:
            dockerd.stop_if_owned()
    result["fault"] = args.fault
    result["command"] = "python -m topologies.bench " + " ".join(
        f"--{k} {v}" for k, v in (("backend", args.backend), ("runs", args.runs), ("fault", args.fault),
                                  ("seed", args.seed), ("hold", args.hold)))
    result["date"] = time.strftime("%Y-%m-%d")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print_tables(result)


if __name__ == "__main__":
    main()
