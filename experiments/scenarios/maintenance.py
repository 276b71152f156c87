"""Planned maintenance loses writes too.

* A manual ``SENTINEL FAILOVER`` (redis/redis issue 6062): Sentinel promotes a replica with
  ``REPLICAOF NO ONE`` and only then re-points the old primary, which keeps acknowledging the
  writes of clients still connected to it; they are gone when it becomes a replica.
* A rolling restart whose shutdown hook fails the primary over first (bitnami/charts issue
  12598, fixed in PR 13021): the same loss, once per round.
* A Cluster manual failover (``CLUSTER FAILOVER``, default mode): the replica waits until it
  has the primary's whole stream while the primary holds its clients, so none should be lost.

The Sentinel ones reuse the split-brain workload (``splitbrain``): group ``a`` writes to the
node that is primary when the cycle begins (a client whose connection was never told), group
``b`` through Sentinel; variants plain / ``min-replicas-to-write 1`` / ``WAIT 1`` (SADD + WAIT in
one pipeline). The Cluster one runs the 1000-counter workload (``counter``).
"""
from __future__ import annotations

from typing import Any

from experiments import faultplans
from experiments.model import GENERIC_CHECKS, HYPOTHESIS, Experiment, Scenario
from experiments.scenarios.counter import CHECKS as COUNTER_CHECKS
from experiments.scenarios.counter import CounterScenario
from experiments.scenarios.splitbrain import CHECKS as SPLIT_CHECKS
from experiments.scenarios.splitbrain import SplitBrainScenario
from faults import kinds
from topologies.api import Topology

ROLLING_PAUSE_MS = 1000


def _sentinel_failover(topo: Topology, sc: Scenario) -> kinds.Fault:
    return kinds.make("failover", sc.primary)  # type: ignore[attr-defined]  # group a's primary: Sentinel's now


def _rolling_restart(topo: Topology, sc: Scenario) -> kinds.Fault:
    return kinds.make("restart", "all", pause_ms=ROLLING_PAUSE_MS, hook="failover")


def _cluster_failover(topo: Topology, sc: Scenario) -> kinds.Fault:
    return kinds.make("failover", faultplans.primary_of(topo, sc.fault_key()), mode="default")


VARIANTS = {  # key: (options, what is published about it, the lost_writes verdict that matches it)
    "plain": ({}, "acknowledged writes are lost: the old primary acknowledges writes until it is re-pointed",
              "violated"),
    "min-replicas": ({"min_replicas": True}, "min-replicas-to-write 1 does not close the window: the old primary "
                     "still has a replica attached while the switch happens, so writes can still be lost",
                     "violated"),
    "wait": ({"wait": True}, "WAIT does not make Redis strongly consistent: a write a replica confirmed can still "
             "be lost when another replica is promoted", "violated"),
}


def _sentinel(kind: str, key: str, fault: Any, label: str, source: str, what: str) -> Experiment:
    options, published, expect = VARIANTS[key]
    expectation = {"name": "expectation", "params": {"check": "lost_writes", "expect": expect,
                                                     "published": published, "source": source}}
    return Experiment(
        name=f"{kind}-{key}", summary=f"{what} ({'no mitigation' if key == 'plain' else key}): acknowledged writes "
        "lost through planned maintenance", pattern="maintenance", topology="sentinel",
        scenario=SplitBrainScenario, fault=fault, fault_label=label, hypothesis={**HYPOTHESIS, "grace_s": 3.0},
        checks=[*SPLIT_CHECKS, expectation, *(["fault_outcome"] if kind == "rolling-restart" else [])],
        options=options, concurrency=32,
        topology_options={} if kind == "rolling-restart" else None)


EXPERIMENTS = [
    *[_sentinel("manual-failover", key, _sentinel_failover, "SENTINEL FAILOVER", "redis/redis issue 6062",
                "manual SENTINEL FAILOVER") for key in VARIANTS],
    # a rolling restart starts from a fresh topology: the nodes restart with the roles they started with
    *[_sentinel("rolling-restart", key, _rolling_restart,
                f"rolling restart, replicas first, {ROLLING_PAUSE_MS} ms apart; the primary failed over first "
                "(a preStop hook)", "bitnami/charts issue 12598", "rolling restart with a failover hook")
      for key in VARIANTS],
    Experiment(
        name="cluster-manual-failover", summary="1000 INCR counters on the Cluster through a manual CLUSTER "
        "FAILOVER of the primary serving them: errors, lost increments (none expected)",
        pattern="maintenance", topology="cluster", scenario=CounterScenario, fault=_cluster_failover,
        fault_label="CLUSTER FAILOVER (default mode) of a primary", hypothesis={**HYPOTHESIS, "grace_s": 3.0},
        checks=[*GENERIC_CHECKS, *COUNTER_CHECKS,
                {"name": "expectation", "params": {
                    "check": "leaderboard_increments", "params": COUNTER_CHECKS[0]["params"], "expect": "held",
                    "published": "a manual CLUSTER FAILOVER loses no acknowledged write: the primary stops its "
                                 "clients until the replica has processed its whole replication stream",
                    "source": "Redis Cluster tutorial, 'Manual failover'"}}]),
]
