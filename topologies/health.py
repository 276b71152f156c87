"""Readiness of a topology, judged from a client's side through the proxied ports.

Both backends expose the same ports on 127.0.0.1, so health is backend-independent.
Every wait polls with a deadline; none is a bare sleep.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable

import requests

from labcommon.poll import wait_until
from topologies import topology_kinds
from topologies.clients import PROBE_TIMEOUT_S
from topologies.clients import probe_client as node_client
from topologies.spec import HOST, TOXIPROXY_API_PORT, NodeSpec, TopologySpec
from topologies.topology_kinds.cluster import cluster_formed, cluster_ok

__all__ = ["PROBE_TIMEOUT_S", "cluster_formed", "cluster_ok", "node_client", "toxiproxy_ready", "wait_healthy",
           "wait_nodes_answer"]


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
