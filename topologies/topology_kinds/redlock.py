"""redlock: independent primaries (no replication between them) for a quorum lock across them."""
from __future__ import annotations

from typing import Any

from topologies.clients import ClientPolicy, probe_client
from topologies.layout import NodeSpec, TopologySpec, redis_node
from topologies.topology_kinds.base import HostOf, Probe, RunningTopology, TopologyKind

NODES = 5  # independent primaries (topologies.spec.REDLOCK_NODES)


def independent_primaries_ok(spec: TopologySpec, password: str) -> bool:
    """Every node is a primary of its own (no replication link, no replica)."""
    for node in spec.redis_nodes:
        with probe_client(node, password) as c:
            info = c.info("replication")
        if info["role"] != "master" or int(info.get("connected_slaves", 0)) != 0:
            return False
    return True


class Redlock(TopologyKind):
    name = "redlock"
    summary = f"{NODES} independent Redis primaries behind Toxiproxy (for patterns.redlock)"
    block = 3
    fails_over = False
    has_sentinels = False
    redis_cluster = False
    on_kubernetes = False

    def nodes(self) -> tuple[NodeSpec, ...]:
        return tuple(redis_node(self.block, i, "primary") for i in range(1, NODES + 1))

    def redis_args(self, node: NodeSpec, spec: TopologySpec, host_of: HostOf) -> list[str]:
        return []

    def readiness(self, spec: TopologySpec, password: str) -> list[Probe]:
        return [("independent primaries", lambda: independent_primaries_ok(spec, password))]

    def client(self, topo: RunningTopology, asyncio: bool, group: str | None, policy: ClientPolicy | None,
               **kwargs: Any) -> Any:
        """A ``list`` of plain clients, one per node in node order (what ``patterns.redlock.Redlock`` takes)."""
        return topo.node_clients(asyncio=asyncio, group=group, policy=policy, **kwargs)

    def primary_of(self, topo: RunningTopology, key: str) -> str:
        """Every node is a primary; the first stands for them (a fault plan targets one node)."""
        return topo.spec.redis_nodes[0].name


KIND = Redlock()
