"""Readiness of a topology, judged from a client's side through the proxied ports.

Both backends expose the same ports on 127.0.0.1, so health is backend-independent.
Every wait polls with a deadline; none is a bare sleep.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable

import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

from labcommon.poll import wait_until
from topologies.spec import HOST, MASTER_NAME, TOXIPROXY_API_PORT, NodeSpec, TopologySpec

PROBE_TIMEOUT_S = 0.5  # socket timeout of a single readiness probe


def node_client(node: NodeSpec, password: str, *, direct: bool = False,
                timeout_s: float = PROBE_TIMEOUT_S) -> redis.Redis:
    # No client-side retry: redis-py 8's default (10 retries with backoff) turns one
    # probe of a dead node into seconds of waiting.
    return redis.Redis(host=HOST, port=node.direct_port if direct else node.port, password=password,
                       socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True,
                       retry=Retry(NoBackoff(), 0))


def toxiproxy_ready() -> bool:
    r = requests.get(f"http://{HOST}:{TOXIPROXY_API_PORT}/version", timeout=PROBE_TIMEOUT_S)
    return r.status_code == 200


def _ping(node: NodeSpec, password: str) -> bool:
    with node_client(node, password) as c:
        return bool(c.ping())


def _replication_ok(spec: TopologySpec, password: str) -> bool:
    """Exactly one primary (a restarted old primary claims the role until Sentinel
    demotes it) and every replica's link up."""
    primaries = 0
    for node in spec.redis_nodes:
        with node_client(node, password) as c:
            info = c.info("replication")
        if info["role"] == "slave" and info.get("master_link_status") != "up":
            return False
        primaries += info["role"] == "master"
    return primaries == 1


def _independent_primaries_ok(spec: TopologySpec, password: str) -> bool:
    """Redlock: every node is a primary of its own (no replication link, no replica)."""
    for node in spec.redis_nodes:
        with node_client(node, password) as c:
            info = c.info("replication")
        if info["role"] != "master" or int(info.get("connected_slaves", 0)) != 0:
            return False
    return True


def _sentinels_ok(spec: TopologySpec, password: str) -> bool:
    """Every Sentinel knows the primary, both replicas and the two other Sentinels."""
    for s in spec.sentinels:
        with node_client(s, password) as c:
            m = c.sentinel_master(MASTER_NAME)
        if m.get("num-slaves", 0) < 2 or m.get("num-other-sentinels", 0) < 2:
            return False
        if m.get("is_odown") or m.get("is_sdown") or m.get("is_master_down"):
            return False
    return True


def cluster_ok(spec: TopologySpec, password: str) -> bool:
    """cluster_state:ok and all 16384 slots covered on every node, each primary with a replica."""
    primaries_with_replica = 0
    for node in spec.redis_nodes:
        with node_client(node, password) as c:
            info = c.cluster("INFO")
            if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != 16384:
                return False
            if int(info.get("cluster_known_nodes", 0)) != len(spec.redis_nodes):
                return False
            view = c.cluster("NODES").values()
            if sum("slave" in n["flags"] for n in view) != len(spec.redis_nodes) // 2:
                return False  # this node's view of the replica assignment has not converged
            if any("fail" in n["flags"] or (not n["connected"] and "myself" not in n["flags"]) for n in view):
                return False
            repl = c.info("replication")
            if repl["role"] == "slave" and repl.get("master_link_status") != "up":
                return False
            if repl["role"] == "master" and int(repl.get("connected_slaves", 0)) >= 1:
                primaries_with_replica += 1
    return primaries_with_replica >= len(spec.redis_nodes) // 2


def cluster_formed(spec: TopologySpec, password: str) -> bool:
    """True once any slot is assigned (the cluster was created)."""
    with node_client(spec.redis_nodes[0], password) as c:
        return int(c.cluster("INFO").get("cluster_slots_assigned", 0)) > 0


def wait_nodes_answer(spec: TopologySpec, password: str, timeout_s: float,
                      details: Callable[[], str]) -> None:
    wait_until(toxiproxy_ready, timeout_s, "Toxiproxy API", details)
    for node in spec.nodes:
        wait_until(functools.partial(_ping, node, password), timeout_s, node.name, details)


def wait_healthy(spec: TopologySpec, password: str, timeout_s: float, details: Callable[[], str]) -> None:
    """Return when the topology serves as designed; NotReadyError with details otherwise."""
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        return max(0.1, deadline - time.monotonic())

    wait_nodes_answer(spec, password, left(), details)
    if spec.name == "sentinel":
        wait_until(lambda: _replication_ok(spec, password), left(), "replication", details)
        wait_until(lambda: _sentinels_ok(spec, password), left(), "Sentinel discovery", details)
    elif spec.name == "cluster":
        wait_until(lambda: cluster_ok(spec, password), left(), "cluster (cluster_state:ok, all slots)", details)
    elif spec.name == "redlock":
        wait_until(lambda: _independent_primaries_ok(spec, password), left(), "independent primaries", details)
