"""What a topology kind provides: the one place where single, sentinel, cluster and redlock differ.

A kind is one module in this package defining one ``TopologyKind`` instance, plus one line in
``KINDS`` (``topologies/topology_kinds/__init__.py``). Everything else (backends, generators,
health, clients, fault plans) asks the kind instead of comparing names.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from topologies.clients import ClientPolicy
from topologies.layout import NodeSpec, Options, TopologySpec

ACK_TIMEOUT_MS = 100  # how long a primary's WAIT gives its replicas to acknowledge at readiness, ms

Address = tuple[str, int]
HostOf = Callable[[NodeSpec], str]  # the address a node is announced and reached at (see topologies.config)
Probe = tuple[str, Callable[[], bool]]  # (what is awaited, a check that is true once it holds)


class RunningTopology(Protocol):
    """What a kind's client factory and ``primary_of`` use of a running topology
    (``topologies.api.Topology``, and a target's ``topologies.target.TargetTopology``)."""

    spec: TopologySpec
    master_name: str

    def client(self, asyncio: bool = False, group: str | None = None, policy: ClientPolicy | None = None,
               **kwargs: Any) -> Any: ...
    def sentinel(self, asyncio: bool = False, group: str | None = None, policy: ClientPolicy | None = None,
                 **kwargs: Any) -> Any: ...
    def node_clients(self, asyncio: bool = False, direct: bool = False, group: str | None = None,
                     **kwargs: Any) -> list[Any]: ...
    def client_kwargs(self, asyncio: bool, policy: ClientPolicy | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``policy``'s client settings with the password, overridden by ``kwargs``."""
        ...
    def data_addresses(self, group: str | None) -> list[Address]:
        """The address of every data node in node order (client ``group``'s route when given)."""
        ...
    def address_remap(self, group: str | None) -> Callable[[Address], Address]:
        """Maps an announced address to the same node's address for client ``group``."""
        ...


class TopologyKind(ABC):
    """One topology kind. Subclasses set the class attributes and implement every abstract method;
    ``tests/topologies/test_topology_kinds.py`` checks the registry against this list."""

    name: ClassVar[str]  # what users type: `redislab up NAME`, the Compose file's name
    summary: ClassVar[str]  # one line: what runs
    block: ClassVar[int]  # port block: its nodes listen on 7000 + 100*block + i (topologies.layout)
    fails_over: ClassVar[bool]  # a replica takes over when its primary dies (Sentinel or Cluster)
    has_sentinels: ClassVar[bool]  # Sentinels monitor the primary; clients ask them where it is
    redis_cluster: ClassVar[bool]  # Redis Cluster mode: hash slots, a cluster bus, nodes.conf, db 0 only,
    #                                formed once by `redis-cli --cluster create` after every node answers
    on_kubernetes: ClassVar[bool]  # topologies.k8s_gen writes manifests for it

    REQUIRED: ClassVar[tuple[str, ...]] = ("name", "summary", "block", "fails_over", "has_sentinels",
                                           "redis_cluster", "on_kubernetes")

    @abstractmethod
    def nodes(self) -> tuple[NodeSpec, ...]:
        """Every node of the topology, data nodes first, in the order they are started."""

    @abstractmethod
    def redis_args(self, node: NodeSpec, spec: TopologySpec, host_of: HostOf) -> list[str]:
        """redis-server arguments only this kind needs (announced addresses, replication, cluster
        mode), appended to the common ones by ``topologies.config.redis_args``."""

    def formed(self, spec: TopologySpec, password: str) -> bool:
        """Whether the started nodes already form the topology (False: the backend must form it,
        see ``Backend.form_cluster``). Most kinds form themselves from their configuration."""
        return True

    def detection_ms(self, options: Options) -> int | None:
        """How long a dead primary goes unnoticed before failover starts, in ms (None: no failover)."""
        return None

    @abstractmethod
    def readiness(self, spec: TopologySpec, password: str) -> list[Probe]:
        """What ``topologies.health.wait_healthy`` polls, in order, once every node answers PING."""

    @abstractmethod
    def client(self, topo: RunningTopology, asyncio: bool, group: str | None, policy: ClientPolicy | None,
               **kwargs: Any) -> Any:
        """The client an application would use on this kind (see ``api.Topology.client``)."""

    @abstractmethod
    def primary_of(self, topo: RunningTopology, key: str) -> str:
        """The name of the node serving writes for ``key`` now."""

    def __repr__(self) -> str:
        return f"<topology kind {self.name}>"


def node_by_port(spec: TopologySpec, port: int) -> str:
    """The data node announced on ``port``."""
    return next(n.name for n in spec.redis_nodes if n.port == port)


def announce_replica_args(node: NodeSpec, spec: TopologySpec, host_of: HostOf) -> list[str]:
    """Announce the proxied address, so Sentinel (and replicas after a failover) reach this node
    through its Toxiproxy proxy. The first primary of a replica (``node.replica_of``) is added by
    ``topologies.config``: an argument, or a line of the node's config file."""
    return ["--replica-announce-ip", host_of(node), "--replica-announce-port", str(node.port)]
