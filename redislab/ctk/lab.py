"""The topology a Chaos Toolkit activity acts on; errors as plain exceptions with one line."""
from __future__ import annotations

from labcommon.errors import LabError
from topologies import api
from topologies.api import Topology

PRIMARY = "primary"  # a fault target resolved when the action runs: the node serving writes *now*


def topology(target_file: str | None = None) -> Topology:
    """The target file's deployment when given, else the topology the lab has up (LabError: none)."""
    if target_file:
        from targets import target
        return target.open_target(target_file)
    topo = api.current()
    if topo is None:
        raise LabError("no topology is up", "start one with `redislab up TOPOLOGY`, or pass target_file")
    return topo


def resolve(topo: Topology, node: str, key: str) -> str:
    """``node``, or the current primary (Sentinel's view; on the Cluster the one owning ``key``) for
    ``primary``."""
    if node != PRIMARY:
        return node
    from experiments.faultplans import primary_of
    return primary_of(topo, key)
