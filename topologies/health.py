"""Readiness of a topology, judged from a client's side through the proxied ports.

Both backends expose the same ports on 127.0.0.1, so health is backend-independent.
Every wait polls with a deadline; none is a bare sleep.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TypeVar

import requests

from topologies import topology_kinds
from topologies.clients import PROBE_TIMEOUT_S
from topologies.clients import probe_client as node_client
from topologies.errors import NotReadyError
from topologies.spec import HOST, TOXIPROXY_API_PORT, NodeSpec, TopologySpec
from topologies.topology_kinds.cluster import cluster_formed, cluster_ok

__all__ = ["PROBE_TIMEOUT_S", "cluster_formed", "cluster_ok", "node_client", "toxiproxy_ready", "wait_healthy",
           "wait_nodes_answer", "wait_until"]

T = TypeVar("T")


def wait_until(probe: Callable[[], T | None], timeout_s: float, what: str,
               details: Callable[[], str] = lambda: "", interval_s: float = 0.05) -> T:
    """Call ``probe`` until it returns a truthy value or ``timeout_s`` seconds pass.

    Exceptions from the probe count as "not yet"; the last one is quoted on timeout.
    """
    deadline = time.monotonic() + timeout_s
    last: str = "no answer"
    while True:
        try:
            result = probe()
            if result:
                return result
            last = f"not yet ({result!r})"
        except Exception as exc:  # noqa: BLE001 - readiness: any failure means "not yet"
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise NotReadyError(f"{what} not ready after {timeout_s:.0f} s: {last}",
                                "see the log lines below; `redislab down` cleans up", details())
        time.sleep(interval_s)


def toxiproxy_ready() -> bool:
    r = requests.get(f"http://{HOST}:{TOXIPROXY_API_PORT}/version", timeout=PROBE_TIMEOUT_S)
    return r.status_code == 200


def _ping(node: NodeSpec, password: str) -> bool:
    with node_client(node, password) as c:
        return bool(c.ping())


def wait_nodes_answer(spec: TopologySpec, password: str, timeout_s: float,
                      details: Callable[[], str]) -> None:
    wait_until(toxiproxy_ready, timeout_s, "Toxiproxy API", details)
    for node in spec.nodes:
        wait_until(functools.partial(_ping, node, password), timeout_s, node.name, details)


def wait_healthy(spec: TopologySpec, password: str, timeout_s: float, details: Callable[[], str],
                 form: Callable[[], None] | None = None) -> None:
    """Return when the topology serves as designed; NotReadyError with details otherwise.

    Every node must answer PING, then the kind's readiness probes hold one after the other
    (``TopologyKind.readiness``). ``form``: called once every node answers when the kind says the
    nodes do not form the topology yet (``TopologyKind.formed``; the backend's ``form_cluster``).
    """
    deadline = time.monotonic() + timeout_s
    kind = topology_kinds.get(spec.name)

    def left() -> float:
        return max(0.1, deadline - time.monotonic())

    wait_nodes_answer(spec, password, left(), details)
    if form is not None and not kind.formed(spec, password):
        form()
    for what, probe in kind.readiness(spec, password):
        wait_until(probe, left(), what, details)
