"""A stalled thread: the primary's one thread kept busy (the ``slow_command`` fault) under the
cache-aside workload (database fallback + breaker).

* ``lua``: a script spinning past ``busy-reply-threshold`` (500 ms here): every other command
  gets ``-BUSY``. Sentinel answers a primary that replies BUSY to its PINGs, once it considers
  it down, with ``SCRIPT KILL`` (sentinel.c, ``sentinelPingReplyCallback``): no failover expected.
* ``debug_sleep``: ``DEBUG SLEEP`` for the whole fault phase: no reply at all, longer than
  ``down-after-milliseconds`` (1 s) and ``cluster-node-timeout`` (2 s): a failover is expected
  (Sentinel docs: no valid reply for down-after-milliseconds is down; Cluster spec: node-timeout).
* ``keys``: ``KEYS`` over 1 M keys in a loop: each call blocks for a fraction of a second, PINGs
  are answered in between: no failover expected, but every request waits behind the scans.

Measured: every client's latency and errors during the stall (the generic figures), whether a
replica was promoted (``failover_expected``), and what the breaker and the fallback did
(``cache_fallback``, the breaker on the timeline).
"""
from __future__ import annotations

from typing import Any

from experiments import faultplans
from experiments.model import GENERIC_CHECKS, Experiment, Scenario
from experiments.scenarios.cache import CHECKS as CACHE_CHECKS
from experiments.scenarios.cache import HYPOTHESIS as CACHE_HYPOTHESIS
from experiments.scenarios.cache import CacheScenario
from faults import kinds
from topologies.api import Topology

BUSY_MS = 500
LUA_MAX_MS = 120_000  # the script's own limit; heal (or Sentinel) kills it long before


def _phase_ms(sc: Scenario) -> int:
    """The length of the fault phase now starting (ms): how long a stall that cannot be killed lasts."""
    window = sc.ctx.phases[-1]
    return max(100, int((window.end - window.start) * 1000))


def _stall(how: str) -> Any:
    def plan(topo: Topology, sc: Scenario) -> kinds.Fault:
        node = faultplans.primary_of(topo, sc.fault_key())
        if how == "lua":
            return kinds.make("slow_command", node, how="lua", duration_ms=LUA_MAX_MS, busy_ms=BUSY_MS)
        return kinds.make("slow_command", node, how=how, duration_ms=_phase_ms(sc))
    return plan


SENTINEL_SRC = "Sentinel docs and sentinel.c"
CASES = {  # name: (how, topology, failover expected, what is published)
    "stall-lua": ("lua", "sentinel", False, "a primary answering BUSY to Sentinel's PINGs gets SCRIPT KILL from "
                  "Sentinel once it is considered down; the script ends and no replica is promoted", SENTINEL_SRC),
    "stall-debug-sleep": ("debug_sleep", "sentinel", True, "a primary that does not answer for longer than "
                          "down-after-milliseconds (1 s) is failed over", SENTINEL_SRC),
    "stall-keys": ("keys", "sentinel", False, "KEYS over a large keyspace blocks each request for the scan, but "
                   "Sentinel's PINGs are answered between scans: no failover", SENTINEL_SRC),
    "stall-debug-sleep-cluster": ("debug_sleep", "cluster", True, "a primary unreachable for longer than "
                                  "cluster-node-timeout (2 s) is failed over by its replica",
                                  "Redis Cluster specification"),
}


def _experiment(name: str) -> Experiment:
    how, topology, expect, published, source = CASES[name]
    check = {"name": "failover_expected", "params": {"expect": expect, "published": published, "source": source}}
    return Experiment(
        name=name, summary=f"the primary's thread kept busy ({how}) under cache-aside with fallback + breaker: "
        "latency, errors, failover or not", pattern="stalled-thread", topology=topology,
        topologies=tuple(t for t in ("sentinel", "cluster") if t != topology and how != "keys"),
        scenario=CacheScenario, fault=_stall(how), fault_label=f"keep the primary busy ({how})",
        hypothesis=dict(CACHE_HYPOTHESIS), checks=[*GENERIC_CHECKS, *CACHE_CHECKS, check, "fault_outcome"],
        options={"fallback": "database+breaker"})


EXPERIMENTS = [_experiment(n) for n in CASES]
