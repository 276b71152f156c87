"""cluster: Redis Cluster, three primaries and three replicas (assigned by `redis-cli --cluster create`)."""
from __future__ import annotations

from typing import Any

import redis.asyncio.cluster
import redis.cluster
from redis.crc import key_slot

from topologies.clients import ClientPolicy, probe_client
from topologies.layout import NodeSpec, Options, TopologySpec, redis_node
from topologies.topology_kinds.base import ACK_TIMEOUT_MS, HostOf, Probe, RunningTopology, TopologyKind, node_by_port

SLOTS = 16384


def cluster_ok(spec: TopologySpec, password: str) -> bool:
    """cluster_state:ok and all 16384 slots covered on every node, each primary with a replica."""
    primaries_with_replica = 0
    for node in spec.redis_nodes:
        with probe_client(node, password) as c:
            info = c.cluster("INFO")
            if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != SLOTS:
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


READINESS_KEY = "__redislab__:readiness"  # set and deleted at once: the dataset is left as it was


def key_on(ranges: list[list[str]]) -> str:
    """A key of ``READINESS_KEY``'s name whose hash tag puts it in one of ``ranges`` (CLUSTER
    NODES' slot ranges: ``[start, end]`` or ``[slot]``)."""
    bounds = [(int(r[0]), int(r[-1])) for r in ranges if not r[0].startswith("[")]  # [slot->-id]: migrating
    for i in range(SLOTS * 64):  # one slot: hit within 16384 tags on average
        key = f"{READINESS_KEY}{{{i}}}"
        if any(lo <= key_slot(key.encode()) <= hi for lo, hi in bounds):
            return key
    raise ValueError(f"no slot in {ranges}")


def replicas_acknowledge(spec: TopologySpec, password: str) -> bool:
    """Every primary's replicas acknowledge a write within ``ACK_TIMEOUT_MS``: a replica reports
    its link up about a second before its primary streams to it (the primary waits for the
    replica's first REPLCONF ACK), and until then ``WAIT`` counts it out. The write is a key of
    the primary's own slots, set and deleted. (Left out once after six fresh starts never showed
    it; CI then caught a fresh Docker cluster's redis-1 with WAIT 1 answering 0.)"""
    for node in spec.redis_nodes:
        with probe_client(node, password) as c:
            repl = c.info("replication")
            if repl["role"] != "master" or not int(repl.get("connected_slaves", 0)):
                continue
            me = next(v for v in c.cluster("NODES").values() if "myself" in v["flags"])
            if not me["slots"]:
                continue
            key = key_on(me["slots"])
            c.set(key, "ack?", px=1000)  # expires by itself should the DEL not run
            c.delete(key)
            replicas = int(repl["connected_slaves"])
            if int(c.wait(replicas, ACK_TIMEOUT_MS)) < replicas:
                return False
    return True


def cluster_formed(spec: TopologySpec, password: str) -> bool:
    """True once any slot is assigned (the cluster was created)."""
    with probe_client(spec.redis_nodes[0], password) as c:
        return int(c.cluster("INFO").get("cluster_slots_assigned", 0)) > 0


class Cluster(TopologyKind):
    name = "cluster"
    summary = "Redis Cluster: 3 primaries + 3 replicas behind Toxiproxy"
    block = 2
    fails_over = True
    has_sentinels = False
    redis_cluster = True
    on_kubernetes = True

    def nodes(self) -> tuple[NodeSpec, ...]:
        return tuple(redis_node(self.block, i, "primary" if i <= 3 else "replica", bus=True) for i in range(1, 7))

    def redis_args(self, node: NodeSpec, spec: TopologySpec, host_of: HostOf) -> list[str]:
        assert node.bus_port is not None and node.direct_bus_port is not None
        return [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(spec.options.node_timeout_ms),
            "--cluster-port", str(node.direct_bus_port),
            "--cluster-announce-ip", host_of(node),
            "--cluster-announce-port", str(node.port),
            "--cluster-announce-bus-port", str(node.bus_port),
            # Lab default: keep serving the slots that are still covered while
            # a primary is down, so its outage shows per slot.
            "--cluster-require-full-coverage", "no",
        ]

    def formed(self, spec: TopologySpec, password: str) -> bool:
        return cluster_formed(spec, password)

    def detection_ms(self, options: Options) -> int | None:
        return options.node_timeout_ms  # cluster-node-timeout

    def readiness(self, spec: TopologySpec, password: str) -> list[Probe]:
        return [("cluster (cluster_state:ok, all slots)", lambda: cluster_ok(spec, password)),
                ("replicas acknowledging writes", lambda: replicas_acknowledge(spec, password))]

    def client(self, topo: RunningTopology, asyncio: bool, group: str | None, policy: ClientPolicy | None,
               **kwargs: Any) -> Any:
        """``RedisCluster`` with every node as a startup node, so it connects while any one is down."""
        kwargs = topo.client_kwargs(asyncio, policy, kwargs)
        if group:
            kwargs["address_remap"] = topo.address_remap(group)
        addrs = topo.data_addresses(group)
        if asyncio:
            return redis.asyncio.cluster.RedisCluster(
                startup_nodes=[redis.asyncio.cluster.ClusterNode(*a) for a in addrs], **kwargs)
        return redis.cluster.RedisCluster(startup_nodes=[redis.cluster.ClusterNode(*a) for a in addrs], **kwargs)

    def primary_of(self, topo: RunningTopology, key: str) -> str:
        """The primary owning ``key``'s slot, as the cluster's slot map says."""
        with topo.client(socket_timeout=1) as rc:
            port = rc.get_node_from_key(key).port
        return node_by_port(topo.spec, int(port))


KIND = Cluster()
