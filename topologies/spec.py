"""What a topology is, independent of how it runs (local processes or Docker).

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
Blocks: single 0, sentinel 1, cluster 2, redlock 3 (7301-7305, direct 17301-17305).
Outgoing connections of a node come from 127.0.1.((port - 7000) mod 256) (bind-source-addr):
distinct within each topology (single .1, sentinel .101-.113, cluster .201-.206, redlock .45-.49).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Literal

from labcommon.errors import LabError, UnknownNameError

TOPOLOGIES: tuple[str, ...] = ("single", "sentinel", "cluster", "redlock")
HOST = "127.0.0.1"
TOXIPROXY_API_PORT = 18474
CLIENT_GROUPS: dict[str, int] = {"a": 1000, "b": 2000}  # named client groups: port offset of their proxies
MASTER_NAME = "lab"  # the name Sentinels monitor the primary under
PASSWORD_ENV = "REDISLAB_PASSWORD"

NodeKind = Literal["redis", "sentinel"]
_BLOCK = {"single": 0, "sentinel": 1, "cluster": 2, "redlock": 3}
REDLOCK_NODES = 5  # independent primaries of the redlock topology (no replication between them)


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


def _redis(block: int, i: int, role: Literal["primary", "replica"], replica_of: str | None = None,
           bus: bool = False) -> NodeSpec:
    base = 7000 + 100 * block
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


def build_spec(name: str, options: Options | None = None) -> TopologySpec:
    """The nodes and ports of topology ``name``."""
    if name not in TOPOLOGIES:
        raise UnknownNameError("topology", name, TOPOLOGIES, "try: redislab up sentinel")
    opts = (options or Options()).validate()
    block = _BLOCK[name]
    if name == "single":
        nodes: tuple[NodeSpec, ...] = (_redis(block, 1, "primary"),)
    elif name == "sentinel":
        base = 7000 + 100 * block
        nodes = (
            _redis(block, 1, "primary"),
            _redis(block, 2, "replica", "redis-1"),
            _redis(block, 3, "replica", "redis-1"),
            *(NodeSpec(f"sentinel-{i}", "sentinel", base + 10 + i, 10_000 + base + 10 + i, "sentinel")
              for i in (1, 2, 3)),
        )
    elif name == "cluster":  # replicas are assigned by `redis-cli --cluster create`
        nodes = tuple(_redis(block, i, "primary" if i <= 3 else "replica", bus=True) for i in range(1, 7))
    else:  # redlock: independent single nodes, each its own primary, for a quorum lock across them
        nodes = tuple(_redis(block, i, "primary") for i in range(1, REDLOCK_NODES + 1))
    return TopologySpec(name=name, nodes=nodes, options=opts)


def with_options(spec: TopologySpec, options: Options) -> TopologySpec:
    return replace(spec, options=options.validate())
