"""Fault targets a test can write without knowing node names: ``primary`` is the node
serving writes *now* (after a failover it is another node than at the start).

``primary`` may stand anywhere a node name may: ``primary`` (the node), ``primary@a``
(client group a's link to it), ``primary-bus`` (its cluster bus), or a member of a
partition side (``primary,@a|redis-2,...``).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from experiments.faultplans import primary_of
from faults import netfilter
from topologies.api import Topology

PRIMARY = "primary"
DEFAULT_KEY = "lab:probe"  # on the Cluster, "the primary" is the one owning this key's slot
_PRIMARY_TOKEN = re.compile(r"(?<![\w@-])primary(?=$|[@,|\s]|-bus)")


def resolve(topo: Topology, target: str, key: str = DEFAULT_KEY) -> str:
    """``target`` with every ``primary`` token replaced by the current primary's name."""
    if not _PRIMARY_TOKEN.search(target):
        return target
    return _PRIMARY_TOKEN.sub(primary_of(topo, key), target)


def partition_target(topo: Topology, members: Sequence[str], key: str = DEFAULT_KEY) -> str:
    """The partition target putting ``members`` on one side and everyone else (every other
    node, the client groups @a/@b, the default clients @clients) on the other."""
    if len(members) == 1 and "|" in members[0]:
        return resolve(topo, members[0], key)  # both sides given: 'a,b|c,d'
    side = [resolve(topo, m.strip(), key) for m in members if m.strip()]
    if len(side) == 1 and not side[0].startswith("@"):
        return side[0]  # one node: isolated from everyone (the catalogue's own form)
    others = [m for m in netfilter.members(topo.spec) if m not in side]
    return f"{','.join(side)}|{','.join(others)}"
