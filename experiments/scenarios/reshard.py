"""Cluster resharding under load: the 1000-counter workload (``counter``) with its keys in 8
hash tags (8 slots), and those slots moved to another primary each cycle (the ``reshard``
fault: SETSLOT IMPORTING / MIGRATING, MIGRATE 10 keys at a time with a 50 ms pause, SETSLOT
NODE). Clients must follow MOVED and ASK; no acknowledged increment may be lost (Redis Cluster
specification, 'Live reconfiguration').
"""
from __future__ import annotations

from redis.crc import key_slot

from experiments.model import GENERIC_CHECKS, HYPOTHESIS, Experiment, Scenario
from experiments.scenarios.counter import CHECKS as COUNTER_CHECKS
from experiments.scenarios.counter import N_KEYS, CounterScenario
from faults import kinds, maintenance
from topologies.api import Topology

TAGS = 8


class ReshardScenario(CounterScenario):
    async def setup(self) -> None:
        await super().setup()
        self.keys = [f"ctr:{{rs-{self.ctx.run_id}-{i % TAGS}}}:{i}" for i in range(N_KEYS)]

    def slots(self) -> list[int]:
        return sorted({key_slot(k.encode()) for k in self.keys})


def _move_slots(topo: Topology, sc: Scenario) -> kinds.Fault:
    slots = sc.slots()  # type: ignore[attr-defined]  # this module's scenario has .slots(); fault plans are typed on Scenario
    owners, _ids = maintenance.slot_owners(topo)
    primaries = sorted(n.name for n in topo.spec.redis_nodes if topo.role(n.name) == "primary")
    first = owners[slots[0]]
    dst = primaries[(primaries.index(first) + 1) % len(primaries)] if first in primaries else primaries[0]
    return kinds.make("reshard", dst, slots=",".join(map(str, slots)), batch=10, pause_ms=50)


EXPERIMENTS = [
    Experiment(
        name="cluster-reshard", summary="1000 INCR counters in 8 slots on the Cluster while those slots migrate "
        "to another primary: MOVED/ASK, errors and latency during the migration, no increment lost",
        pattern="quorum", topology="cluster", scenario=ReshardScenario, fault=_move_slots,
        fault_label="migrate the workload's slots to another primary", hypothesis=dict(HYPOTHESIS),
        checks=[*GENERIC_CHECKS, *COUNTER_CHECKS,
                {"name": "expectation", "params": {
                    "check": "leaderboard_increments", "params": COUNTER_CHECKS[0]["params"], "expect": "held",
                    "published": "during resharding a client that follows MOVED and ASK redirections loses no "
                                 "acknowledged write", "source": "Redis Cluster specification"}},
                "fault_outcome"]),
]
