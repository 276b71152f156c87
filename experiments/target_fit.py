"""Which experiments can run on a target (an existing deployment, ``targets.target``), and why not.

    ok, why = runnable(topo, registry.get("cache-aside-kill"))

Used by ``redislab list --target FILE`` and before ``redislab run ... --target FILE``.
"""
from __future__ import annotations

from experiments import faultplans
from experiments.model import Experiment, FaultPlan
from experiments.scenarios import splitbrain
from targets.target import DESTRUCTIVE, GROUPS, PROXY_FAULTS, TargetTopology
from topologies import topology_kinds


def fault_kind(exp: Experiment) -> str | None:
    """The fault an experiment's plan injects (kill / latency / partition), None when not classified."""
    plans: dict[FaultPlan, str] = {faultplans.kill_primary: "kill", faultplans.latency_primary: "latency",
             faultplans.partition_primary: "partition", splitbrain._split: "partition"}
    return plans.get(exp.fault)


def runnable(topo: TargetTopology, exp: Experiment) -> tuple[bool, str]:
    """Whether ``exp`` can run on the target ``topo``, and why not."""
    t = topo.target
    if t.kind not in (exp.topology, *exp.topologies):
        return False, f"runs on {', '.join((exp.topology, *exp.topologies))}, the target is {t.kind}"
    if not getattr(exp.scenario, "keys_in_prefix", False):
        return False, "its keys are not confined to the target's key prefix yet"
    kind = fault_kind(exp)
    if kind is None:
        return False, "its fault plan is not classified for targets"
    if kind not in t.allowed_faults:
        return False, f"needs {kind}, not in limits.allowed_faults"
    if kind in DESTRUCTIVE and not t.allow_destructive:
        return False, f"needs {kind}: set limits.allow_destructive: true"
    if kind in PROXY_FAULTS and not any(n.route.proxy for n in t.nodes):
        return False, f"needs {kind} through Toxiproxy: no node declares its proxy"
    if kind == "partition":
        if t.toxiproxy_api is None or not all(n.route.proxy for n in t.all_nodes):
            return False, "a partition needs a declared proxy in front of every node (both directions cut)"
        if topology_kinds.get(t.kind).redis_cluster:
            return False, ("Cluster nodes talk to each other on the bus both ways: disabling proxies is "
                           "an inbound-only cut, not a partition")
    if getattr(exp.scenario, "needs_groups", False):
        missing = [n.name for n in t.all_nodes if not all(g in n.groups and n.groups[g].proxy for g in GROUPS)]
        if missing:
            return False, f"needs client-group routes a and b with proxies on every node (missing: {missing[0]})"
    return True, ""
