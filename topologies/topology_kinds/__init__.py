"""The topology kinds: one module each, one line in ``KINDS``.

    kind = topology_kinds.get("sentinel")   # UnknownNameError listing the known kinds otherwise
    kind.nodes(), kind.client(topo, ...), kind.readiness(spec, password), kind.primary_of(topo, key)

Adding a kind: a module here defining ``KIND = <a TopologyKind subclass>()`` (see ``base``) and its
line below; ``tests/topologies/test_topology_kinds.py`` fails when a part is missing. (Named
``topology_kinds``, not ``kinds``, beside ``faults.kinds``: modules such as
``experiments.faultplans`` use both.)
"""
from __future__ import annotations

from labcommon.errors import UnknownNameError
from topologies.topology_kinds import cluster, redlock, sentinel, single
from topologies.topology_kinds.base import TopologyKind

KINDS: dict[str, TopologyKind] = {  # in port-block order; `redislab up` lists them in this order
    "single": single.KIND,
    "sentinel": sentinel.KIND,
    "cluster": cluster.KIND,
    "redlock": redlock.KIND,
}


def names() -> tuple[str, ...]:
    """Every kind's name, in registry order."""
    return tuple(KINDS)


def get(name: str) -> TopologyKind:
    """The kind called ``name``; UnknownNameError (one line, with the known names) otherwise."""
    kind = KINDS.get(name)
    if kind is None:
        raise UnknownNameError("topology", name, names(), "try: redislab up sentinel")
    return kind
