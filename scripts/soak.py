"""Soak: N cycles of up, every fault (inject + heal), heal, down; resource counts must stay flat.

    python scripts/soak.py --cycles 50 --backend local,docker [--topology single]

After each cycle it counts what a leak would leave behind: this process's open file
descriptors and live child processes, the lab's processes on the machine (Redis,
Sentinel, Toxiproxy, container shims, docker-proxy), Docker containers, networks and
volumes, iptables rules (every table, this machine's namespace), toxics and disabled
proxies (before `down`), and the lab's records (active faults, registered clients).
The first cycle is the baseline (it may build images or warm caches); any later count
above it fails the soak (exit 1). A table goes to stdout and ``--out`` (JSON).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from faults import kinds, ownership
from faults.events import FAULT_INJECT, EventLog
from faults.injector import FaultInjector, active_faults, heal_all
from faults.toxiproxy_api import ToxiproxyAPI
from labcommon.errors import LabError
from labcommon.poll import wait_until
from topologies import api, docker_sdk, dockerd, runlock
from topologies.processes import OwnedProcess

LAB_COMMANDS = {"redis-server", "redis-sentinel", "toxiproxy-server", "toxiproxy", "containerd-shim",
                "containerd-shim-runc-v2", "docker-proxy", "nsenter", "iptables"}
CLIENT = [sys.executable, "-c", "import time\nwhile True:\n    time.sleep(0.05)"]


def fault_plan(client_pid: int) -> list[kinds.Fault]:
    """Every fault in the catalogue, on redis-1 (or the soak's client process)."""
    params: dict[str, dict[str, Any]] = {
        "latency": {"latency_ms": 10}, "bandwidth": {"rate": 100}, "slow_close": {"delay": 10},
        "limit_data": {"bytes": 10_000}, "memory": {"maxmemory_mb": 64},
    }
    plan = []
    for kind in kinds.FAULTS:
        if kind == "partition" and os.geteuid() != 0:
            continue  # needs root (iptables)
        target = f"pid:{client_pid}" if kind.startswith("client_") else "redis-1"
        plan.append(kinds.make(kind, target, **params.get(kind, {})))
    return plan


def _lab_processes() -> int:
    """Live (not zombie) processes whose name is one of the lab's commands."""
    gone = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    return sum(1 for p in psutil.process_iter(["name", "status"])
               if p.info["name"] in LAB_COMMANDS and p.info["status"] not in gone)


def _docker_counts() -> dict[str, int]:
    """Containers (any state), networks and volumes on the daemon (0 each when none answers)."""
    if not dockerd.daemon_answers():
        return {"containers": 0, "networks": 0, "volumes": 0}
    client = docker_sdk.api()
    with docker_sdk.calling("count containers, networks and volumes"):
        return {"containers": len(client.containers(all=True, quiet=True)), "networks": len(client.networks()),
                "volumes": len(client.volumes().get("Volumes") or [])}


def _iptables_rules() -> int:
    if os.geteuid() != 0 or shutil.which("iptables-save") is None:
        return 0
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=60).stdout
    return sum(1 for line in out.splitlines() if line.startswith("-A"))


def counts() -> dict[str, int]:
    gc.collect()  # unreachable sockets are closed by the collector, not leaked
    me = OwnedProcess.of(os.getpid())
    return {
        "fds": psutil.Process().num_fds(),
        "children": len(me.children()) if me is not None else 0,  # live descendants
        "lab_processes": _lab_processes(),
        **_docker_counts(),
        "iptables_rules": _iptables_rules(),
        "records": len(active_faults()) + len(ownership.clients()),
    }


def toxics_left() -> int:
    tox = ToxiproxyAPI()
    return sum(len(t) for t in tox.toxics().values()) + len(tox.disabled())


def serves(topo: api.Topology) -> bool:
    with topo.client(socket_timeout=1, socket_connect_timeout=1) as c:
        return bool(c.ping())


def cycle(topology: str, backend: str) -> dict[str, int]:
    """One cycle: up, every fault injected and healed, heal, down. Returns the counts after."""
    topo = api.up(topology, backend=backend)
    client = subprocess.Popen(CLIENT, stdin=subprocess.DEVNULL)
    ownership.register_client(client.pid, "soak-client")
    toxics = 0
    events = EventLog()
    try:
        injector = FaultInjector(topo, events)
        for fault in fault_plan(client.pid):
            with injector.active(fault):
                pass
            wait_until(lambda: serves(topo), 60, f"topology serves after {fault!r}")
        heal_all(topo)
        toxics = toxics_left()
    finally:
        client.kill()
        client.wait()
        ownership.unregister_client(client.pid)
        api.down()
    return {**counts(), "toxics": toxics, "faults": sum(e.kind == FAULT_INJECT for e in events.events)}


def soak(backend: str, cycles: int, topology: str) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    print(f"soak: {cycles} cycles of {topology} on {backend}", flush=True)
    for i in range(1, cycles + 1):
        started = time.monotonic()
        row = {"backend": backend, "cycle": i, **cycle(topology, backend),
               "seconds": round(time.monotonic() - started, 1)}
        rows.append(row)
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items() if k != "backend"), flush=True)
    base = rows[0]
    grew = [f"{backend}: {k} grew from {base[k]} (cycle 1) to {r[k]} (cycle {r['cycle']})"
            for r in rows[1:] for k in base if k not in ("backend", "cycle", "seconds", "faults") and r[k] > base[k]]
    if any(r["toxics"] for r in rows):
        grew.append(f"{backend}: toxics or disabled proxies were left after heal")
    return rows, grew


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--backend", default="local,docker", help="comma-separated: local,docker")
    parser.add_argument("--topology", default="single", choices=("single", "sentinel", "cluster"))
    parser.add_argument("--out", default="results/soak.json")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    if args.cycles < 2 or not set(backends) <= {"local", "docker"} or not backends:
        print("soak: --cycles must be >= 2 and --backend a list of local, docker", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    started_daemon = False
    started = time.monotonic()
    try:
        with runlock.hold(f"soak --cycles {args.cycles}"):
            for backend in backends:
                if backend == "docker":
                    started_daemon = dockerd.ensure_running() or started_daemon
                r, p = soak(backend, args.cycles, args.topology)
                rows += r
                problems += p
    except LabError as exc:
        print(f"soak: error: {exc.line()}", file=sys.stderr)
        return 2
    finally:
        if started_daemon:
            daemon = dockerd.stop_if_owned()
            if daemon.reason:
                print(f"soak: left the Docker daemon it started running: {daemon.reason}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    minutes = (time.monotonic() - started) / 60
    out.write_text(json.dumps({"cycles": args.cycles, "topology": args.topology, "backends": backends,
                               "minutes": round(minutes, 1), "problems": problems, "rows": rows}, indent=2))
    for line in problems:
        print(f"soak: FAIL {line}")
    print(f"soak: {'FAIL' if problems else 'PASS'}: {args.cycles} cycles x {len(backends)} backend(s) in "
          f"{minutes:.1f} min; counts {'grew' if problems else 'stayed flat'} (details: {out})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
