"""single: one Redis node, its own primary; nothing takes over when it dies."""
from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from topologies.clients import ClientPolicy
from topologies.layout import NodeSpec, TopologySpec, redis_node
from topologies.topology_kinds.base import HostOf, Probe, RunningTopology, TopologyKind, announce_replica_args


class Single(TopologyKind):
    name = "single"
    summary = "one Redis node behind Toxiproxy"
    block = 0
    fails_over = False
    has_sentinels = False
    redis_cluster = False
    on_kubernetes = True

    def nodes(self) -> tuple[NodeSpec, ...]:
        return (redis_node(self.block, 1, "primary"),)

    def redis_args(self, node: NodeSpec, spec: TopologySpec, host_of: HostOf) -> list[str]:
        return announce_replica_args(node, spec, host_of)

    def readiness(self, spec: TopologySpec, password: str) -> list[Probe]:
        return []  # answering PING is all

    def client(self, topo: RunningTopology, asyncio: bool, group: str | None, policy: ClientPolicy | None,
               **kwargs: Any) -> Any:
        """A plain ``Redis`` to the node."""
        cls: Any = redis.asyncio.Redis if asyncio else redis.Redis
        host, port = topo.data_addresses(group)[0]
        return cls(host=host, port=port, **topo.client_kwargs(asyncio, policy, kwargs))

    def primary_of(self, topo: RunningTopology, key: str) -> str:
        return topo.spec.redis_nodes[0].name


KIND = Single()
