"""sentinel: a primary, two replicas and three Sentinels that fail the primary over (quorum 2)."""
from __future__ import annotations

from typing import Any

from topologies.clients import ClientPolicy, probe_client
from topologies.layout import MASTER_NAME, NodeSpec, Options, TopologySpec, redis_node, sentinel_node
from topologies.topology_kinds.base import (
    ACK_TIMEOUT_MS,
    HostOf,
    Probe,
    RunningTopology,
    TopologyKind,
    announce_replica_args,
    node_by_port,
)


def replication_ok(spec: TopologySpec, password: str) -> bool:
    """Exactly one primary (a restarted old primary claims the role until Sentinel
    demotes it) and every replica's link up."""
    primaries = 0
    for node in spec.redis_nodes:
        with probe_client(node, password) as c:
            info = c.info("replication")
        if info["role"] == "slave" and info.get("master_link_status") != "up":
            return False
        primaries += info["role"] == "master"
    return primaries == 1


READINESS_CHANNEL = "__redislab__:readiness"  # a PUBLISH here replicates without touching a key


def replicas_acknowledge(spec: TopologySpec, password: str) -> bool:
    """Every replica acknowledges a write within ``ACK_TIMEOUT_MS``.

    A replica reports its link up, and the primary lists it online, about a second before
    the primary streams to it: the primary waits for the replica's first REPLCONF ACK (sent
    once a second), and until then ``WAIT`` counts it out. A PUBLISH is propagated to the
    replicas like a write (outside Cluster) and advances this connection's offset, so the
    probe leaves the dataset as it was.
    """
    replicas = len(spec.redis_nodes) - 1  # whichever node is the primary now
    for node in spec.redis_nodes:
        with probe_client(node, password) as c:
            if c.info("replication")["role"] != "master":
                continue
            c.publish(READINESS_CHANNEL, "ack?")
            return int(c.wait(replicas, ACK_TIMEOUT_MS)) >= replicas
    return False


def sentinels_ok(spec: TopologySpec, password: str) -> bool:
    """Every Sentinel knows the primary, both replicas and the two other Sentinels."""
    for s in spec.sentinels:
        with probe_client(s, password) as c:
            m = c.sentinel_master(MASTER_NAME)
        if m.get("num-slaves", 0) < 2 or m.get("num-other-sentinels", 0) < 2:
            return False
        if m.get("is_odown") or m.get("is_sdown") or m.get("is_master_down"):
            return False
    return True


class Sentinel(TopologyKind):
    name = "sentinel"
    summary = "primary + 2 replicas + 3 Sentinels behind Toxiproxy"
    block = 1
    fails_over = True
    has_sentinels = True
    redis_cluster = False
    on_kubernetes = True

    def nodes(self) -> tuple[NodeSpec, ...]:
        return (redis_node(self.block, 1, "primary"),
                redis_node(self.block, 2, "replica", "redis-1"),
                redis_node(self.block, 3, "replica", "redis-1"),
                *(sentinel_node(self.block, i) for i in (1, 2, 3)))

    def redis_args(self, node: NodeSpec, spec: TopologySpec, host_of: HostOf) -> list[str]:
        return announce_replica_args(node, spec, host_of)

    def detection_ms(self, options: Options) -> int | None:
        return options.down_after_ms  # Sentinel: down-after-milliseconds

    def readiness(self, spec: TopologySpec, password: str) -> list[Probe]:
        return [("replication", lambda: replication_ok(spec, password)),
                ("replicas acknowledging writes", lambda: replicas_acknowledge(spec, password)),
                ("Sentinel discovery", lambda: sentinels_ok(spec, password))]

    def client(self, topo: RunningTopology, asyncio: bool, group: str | None, policy: ClientPolicy | None,
               **kwargs: Any) -> Any:
        """``Sentinel.master_for``: follows the primary the Sentinels name."""
        return topo.sentinel(asyncio, group=group, policy=policy).master_for(
            topo.master_name, **topo.client_kwargs(asyncio, policy, kwargs))

    def primary_of(self, topo: RunningTopology, key: str) -> str:
        """Sentinel's view, not the nodes': a restarted old primary claims the role until
        Sentinel demotes it, and the clients follow Sentinel."""
        _host, port = topo.sentinel().discover_master(topo.master_name)
        return node_by_port(topo.spec, int(port))


KIND = Sentinel()
