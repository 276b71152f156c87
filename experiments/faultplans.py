"""The faults the catalogue crosses every pattern with, chosen at injection time
from the running topology (the *current* primary, not the one at start)."""
from __future__ import annotations

from experiments.model import FaultPlan, Scenario
from faults import kinds
from faults.kinds import Fault
from topologies.api import Topology

LATENCY_MS = 300  # above the scenarios' client timeouts (250 ms): a slow primary looks like a dead one


def primary_of(topo: Topology, key: str = "lab:probe") -> str:
    """The node currently serving writes: the Sentinel/single primary, or on the
    Cluster the primary owning ``key``'s slot (``TopologyKind.primary_of``)."""
    return topo.kind.primary_of(topo, key)


def kill_primary(topo: Topology, sc: Scenario) -> Fault:
    return kinds.make("kill", primary_of(topo, sc.fault_key()))


def latency_primary(topo: Topology, sc: Scenario) -> Fault:
    return kinds.make("latency", primary_of(topo, sc.fault_key()), latency_ms=LATENCY_MS, direction="both")


def partition_primary(topo: Topology, sc: Scenario) -> Fault:
    return kinds.make("partition", primary_of(topo, sc.fault_key()))


FAULT_PLANS: dict[str, tuple[FaultPlan, str]] = {
    "kill": (kill_primary, "kill the primary"),
    "latency": (latency_primary, f"add {LATENCY_MS} ms latency to the primary"),
    "partition": (partition_primary, "isolate the primary (two-way partition)"),
}
