"""The run's observer: a child process that records what Redis and the topology say
about themselves (``server_view`` INFO samples, ``topology_events``) while the load
runs, so its threads never compete with the load generator for the interpreter.

It also watches the lab's own machinery: Toxiproxy's API, probed every 0.5 s; each
change is a ``lab`` event (``component``, ``up``). Every client route goes through
Toxiproxy, so when it dies the figures measure the lab, not Redis, and the run's
verdict becomes undecided with that reason.

    python -m experiments.observer CONFIG.json   # started by the runner (experiments.children)
"""
from __future__ import annotations

import signal
import time

from experiments.children import child_writer, config_from_argv, orphaned, ready
from experiments.history import LAB
from experiments.server_view import ServerView
from experiments.topology_events import TopologyEvents
from targets import target
from topologies import api, health

MODULE = "experiments.observer"
LAB_PROBE_S = 0.5  # s between probes of the lab's own machinery


def main() -> None:
    cfg = config_from_argv()
    topo = target.current()  # a run on a target file names it in REDISLAB_TARGET
    if topo is None:
        raise SystemExit("observer: no topology is up")
    # a plain flag: a handler that takes a lock (threading.Event.set) can deadlock the main thread
    # when the signal lands while that thread holds the same lock inside Event.wait
    stopped: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
    writer = child_writer(cfg)
    proxy_up: bool | None = None
    try:
        with ServerView(topo, writer), TopologyEvents(topo, writer):
            ready(cfg)
            while True:
                time.sleep(LAB_PROBE_S)
                if stopped or orphaned(cfg):
                    break
                up = toxiproxy_answers(topo)
                if up != proxy_up:
                    writer.event(LAB, component="toxiproxy", up=up)
                    proxy_up = up
    finally:
        writer.close()


def toxiproxy_answers(topo: api.Topology | None = None) -> bool:
    """True when the topology's (default: the lab's) Toxiproxy API answers within the probe timeout."""
    try:
        return topo.toxiproxy_ready() if topo is not None else health.toxiproxy_ready()
    except Exception:  # noqa: BLE001 - any failure to answer is "down"
        return False


if __name__ == "__main__":
    main()
