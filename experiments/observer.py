"""The run's observer: a child process that records what Redis and the topology say
about themselves (``server_view`` INFO samples, ``topology_events``) while the load
runs, so its threads never compete with the load generator for the interpreter.

    python -m experiments.observer CONFIG.json   # started by the runner (experiments.children)
"""
from __future__ import annotations

import signal
import threading

from experiments.children import child_writer, config_from_argv, orphaned, ready
from experiments.server_view import ServerView
from experiments.topology_events import TopologyEvents
from topologies import api

MODULE = "experiments.observer"


def main() -> None:
    cfg = config_from_argv()
    topo = api.current()
    if topo is None:
        raise SystemExit("observer: no topology is up")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    writer = child_writer(cfg)
    try:
        with ServerView(topo, writer), TopologyEvents(topo, writer):
            ready(cfg)
            while not stop.wait(0.5) and not orphaned(cfg):
                pass
    finally:
        writer.close()


if __name__ == "__main__":
    main()
