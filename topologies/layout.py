"""What a topology is made of, independent of how it runs (local processes or Docker):
its options, nodes, proxies and ports. Which nodes a topology of a given kind has is
the kind's business (``topologies.topology_kinds``); ``topologies.spec`` puts the two
together and re-exports these names.

Every node listens on a *direct* port and is reached by everyone else (clients,
replicas, Sentinels, cluster peers) through a Toxiproxy proxy on its *proxied*
port, which is also the address the node announces. Cluster nodes have a second
pair of ports for the cluster bus. Both backends use the same port numbers on
127.0.0.1 (in Docker every container shares the Toxiproxy container's network
namespace), so one description serves both.

Port plan (all below the ephemeral range 32768-60999):
  proxied client port   7000 + 100*block + i   (announced to peers and clients)
  direct client port   17000 + 100*block + i   (the real redis-server port)
  proxied bus port      7010 + 100*block + i   (cluster only)
  direct bus port      17010 + 100*block + i   (cluster only)
  client group a/b      8000 / 9000 + 100*block + i   (a named client group's own proxy)
  Toxiproxy API        18474
Blocks (each kind's ``block``): single 0, sentinel 1, cluster 2, redlock 3 (7301-7305, direct 17301-17305).
Outgoing connections of a node come from 127.0.1.((port - 7000) mod 256) (bind-source-addr):
distinct within each topology (single .1, sentinel .101-.113, cluster .201-.206, redlock .45-.49).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from labcommon.errors import LabError, UnknownNameError

HOST = "127.0.0.1"
TOXIPROXY_API_PORT = 18474
CLIENT_GROUPS: dict[str, int] = {"a": 1000, "b": 2000}  # named client groups: port offset of their proxies
MASTER_NAME = "lab"  # the name Sentinels monitor the primary under
PASSWORD_ENV = "REDISLAB_PASSWORD"

NodeKind = Literal["redis", "sentinel"]


@dataclass(frozen=True)
class Options:
    """Tunables of a topology. Times in milliseconds."""

    appendonly: bool = False  # AOF persistence on the Redis nodes (single: selectable)
    down_after_ms: int = 1000  # Sentinel: unreachable this long = subjectively down
    failover_timeout_ms: int = 10_000  # Sentinel: failover-timeout
    node_timeout_ms: int = 2000  # Cluster: cluster-node-timeout

    def validate(self) -> Options:
        for name, low, high in (
            ("down_after_ms", 100, 600_000),
            ("failover_timeout_ms", 1000, 3_600_000),
            ("node_timeout_ms", 100, 600_000),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise LabError(f"{name}={value} is out of range; accepted: {low}..{high} ms")
        return self

    @classmethod
    def from_env(cls) -> Options:
        """Options from REDISLAB_* environment variables, lab defaults otherwise."""
        def _int(var: str, default: int) -> int:
            raw = os.environ.get(var)
            if raw is None or raw == "":
                return default
            try:
                return int(raw)
            except ValueError:
                raise LabError(f"{var}={raw!r} is not a whole number of milliseconds") from None

        d = cls()
        return cls(
            appendonly=os.environ.get("REDISLAB_APPENDONLY", "no").lower() in ("1", "yes", "true", "on"),
            down_after_ms=_int("REDISLAB_DOWN_AFTER_MS", d.down_after_ms),
            failover_timeout_ms=_int("REDISLAB_FAILOVER_TIMEOUT_MS", d.failover_timeout_ms),
            node_timeout_ms=_int("REDISLAB_NODE_TIMEOUT_MS", d.node_timeout_ms),
        ).validate()


@dataclass(frozen=True)
class NodeSpec:
    """One redis-server or redis-sentinel of a topology."""

    name: str  # "redis-1", "sentinel-2"
    kind: NodeKind
    port: int  # proxied client port: what clients and peers use (announced)
    direct_port: int  # the port the process itself listens on
    initial_role: Literal["primary", "replica", "sentinel"]
    replica_of: str | None = None  # name of the node it replicates at start (sentinel topology)
    bus_port: int | None = None  # cluster: proxied bus port (announced)
    direct_bus_port: int | None = None  # cluster: cluster-port the process listens on

    @property
    def source_addr(self) -> str:
        """The loopback address this node's outgoing connections come from (bind-source-addr),
        distinct per node of a topology so a partition can cut one node's outbound traffic by
        source; always inside 127.0.1.0/24 (faults.netfilter.NODE_SOURCES)."""
        return f"127.0.1.{(self.port - 7000) % 256}"

    def proxy_ports(self) -> list[int]:
        """The proxied ports peers and clients reach this node on (client, and bus if any)."""
        return [p.listen_port for p in self.proxies()]

    def group_port(self, group: str) -> int:
        """The port client group ``group`` reaches this node on (its own proxy, so a
        partition can put that group on one side)."""
        if group not in CLIENT_GROUPS:
            raise UnknownNameError("client group", group, list(CLIENT_GROUPS))
        return self.port + CLIENT_GROUPS[group]

    def proxies(self) -> list[ProxySpec]:
        out = [ProxySpec(self.name, self.port, self.direct_port)]
        out += [ProxySpec(f"{self.name}@{g}", self.group_port(g), self.direct_port) for g in CLIENT_GROUPS]
        if self.bus_port is not None and self.direct_bus_port is not None:
            out.append(ProxySpec(f"{self.name}-bus", self.bus_port, self.direct_bus_port))
        return out


@dataclass(frozen=True)
class ProxySpec:
    """A Toxiproxy proxy: listens on ``listen_port``, forwards to ``upstream_port``."""

    name: str
    listen_port: int
    upstream_port: int


@dataclass(frozen=True)
class TopologySpec:
    name: str
    nodes: tuple[NodeSpec, ...]
    options: Options = field(default_factory=Options)
    quorum: int = 2  # Sentinel quorum

    @property
    def redis_nodes(self) -> tuple[NodeSpec, ...]:
        return tuple(n for n in self.nodes if n.kind == "redis")

    @property
    def sentinels(self) -> tuple[NodeSpec, ...]:
        return tuple(n for n in self.nodes if n.kind == "sentinel")

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise UnknownNameError("node", name, [n.name for n in self.nodes])

    def proxies(self) -> list[ProxySpec]:
        return [p for n in self.nodes for p in n.proxies()]

    def ports(self) -> list[int]:
        """Every host port the topology binds (proxied, direct, bus, Toxiproxy API)."""
        ports = [TOXIPROXY_API_PORT]
        for p in self.proxies():
            ports += [p.listen_port] + ([p.upstream_port] if p.upstream_port not in ports else [])
        return ports


def block_base(block: int) -> int:
    """The first proxied client port of port block ``block`` (7000 + 100*block)."""
    return 7000 + 100 * block


def redis_node(block: int, i: int, role: Literal["primary", "replica"], replica_of: str | None = None,
               bus: bool = False) -> NodeSpec:
    """Data node ``redis-<i>`` of port block ``block`` (with cluster bus ports when ``bus``)."""
    base = block_base(block)
    return NodeSpec(
        name=f"redis-{i}",
        kind="redis",
        port=base + i,
        direct_port=10_000 + base + i,
        initial_role=role,
        replica_of=replica_of,
        bus_port=base + 10 + i if bus else None,
        direct_bus_port=10_000 + base + 10 + i if bus else None,
    )


def sentinel_node(block: int, i: int) -> NodeSpec:
    """Sentinel ``sentinel-<i>`` of port block ``block`` (ports 7010 + 100*block + i)."""
    port = block_base(block) + 10 + i
    return NodeSpec(f"sentinel-{i}", "sentinel", port, 10_000 + port, "sentinel")
