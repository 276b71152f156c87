"""What a topology is, independent of how it runs (local processes or Docker): ``build_spec(name)``
gives the nodes and ports of topology kind ``name`` (see ``topologies.topology_kinds``).

The parts (``Options``, ``NodeSpec``, ``TopologySpec``, the port plan) are defined in
``topologies.layout`` and re-exported here, where the rest of the lab imports them from.
"""
from __future__ import annotations

from dataclasses import replace

from topologies import topology_kinds
from topologies.layout import (
    CLIENT_GROUPS,
    HOST,
    MASTER_NAME,
    PASSWORD_ENV,
    TOXIPROXY_API_PORT,
    NodeKind,
    NodeSpec,
    Options,
    ProxySpec,
    TopologySpec,
)
from topologies.topology_kinds import redlock

__all__ = ["CLIENT_GROUPS", "HOST", "MASTER_NAME", "PASSWORD_ENV", "REDLOCK_NODES", "TOPOLOGIES",
           "TOXIPROXY_API_PORT", "NodeKind", "NodeSpec", "Options", "ProxySpec", "TopologySpec", "build_spec",
           "with_options"]

TOPOLOGIES: tuple[str, ...] = topology_kinds.names()  # every kind, in registry order
REDLOCK_NODES = redlock.NODES  # independent primaries of the redlock topology (no replication between them)


def build_spec(name: str, options: Options | None = None) -> TopologySpec:
    """The nodes and ports of topology ``name``."""
    kind = topology_kinds.get(name)
    opts = (options or Options()).validate()
    return TopologySpec(name=name, nodes=kind.nodes(), options=opts)


def with_options(spec: TopologySpec, options: Options) -> TopologySpec:
    return replace(spec, options=options.validate())
