"""Sentinel quorum lost: two of the three Sentinels down (paused: hung, no vote), then the
primary killed. A failover needs the quorum (2) to agree the primary is down and a majority of
the Sentinels to authorise it, so none happens: writes fail until the primary is back (AOF on,
so it returns with its data and the question is availability, not loss).

The split-brain workload (``splitbrain``): group ``a`` writes to the primary, group ``b``
through Sentinel. The Sentinels are paused just before each cycle's kill and resumed after the
heal, once the restarted primary answers (a resumed Sentinel whose clock jumped enters TILT
mode for 30 s and acts on nothing). The pauses go through the fault injector, so
``redislab heal`` resumes them if the run dies.
"""
from __future__ import annotations

import asyncio

from experiments.model import HYPOTHESIS, Experiment, Scenario
from experiments.scenarios.splitbrain import CHECKS as SPLIT_CHECKS
from experiments.scenarios.splitbrain import SplitBrainScenario
from faults import kinds, maintenance
from faults.injector import FaultInjector
from topologies.api import Topology

PAUSED = ("sentinel-2", "sentinel-3")


class QuorumLostScenario(SplitBrainScenario):
    async def setup(self) -> None:
        await super().setup()
        self.injector = FaultInjector(self.ctx.topo)
        self.paused: list[kinds.Fault] = []

    async def before_fault(self, cycle: int) -> None:
        await super().before_fault(cycle)
        for name in PAUSED:
            fault = kinds.make("pause", name)
            await asyncio.to_thread(self.injector.inject, fault)
            self.paused.append(fault)
        self.ctx.writer.event("topology", source="lab", event="quorum-lost", detail=f"paused {', '.join(PAUSED)}")

    async def after_heal(self) -> None:
        await asyncio.to_thread(maintenance.wait_answers, self.ctx.topo, self.primary)
        await self._resume()

    async def _resume(self) -> None:
        while self.paused:
            await asyncio.to_thread(self.injector.heal, self.paused.pop())
        self.ctx.writer.event("topology", source="lab", event="quorum-back", detail=f"resumed {', '.join(PAUSED)}")

    async def finish(self) -> dict:
        if self.paused:
            await self._resume()
        return await super().finish()


def _kill(topo: Topology, sc: Scenario) -> kinds.Fault:
    return kinds.make("kill", sc.primary)  # type: ignore[attr-defined]  # this module's scenario sets .primary; fault plans are typed on Scenario


EXPERIMENTS = [
    Experiment(
        name="sentinel-quorum-lost", summary="two of three Sentinels down, then the primary killed: no failover; "
        "writes fail until the primary returns (AOF on)", pattern="quorum", topology="sentinel",
        scenario=QuorumLostScenario, fault=_kill, fault_label="pause 2 of 3 Sentinels, SIGKILL the primary; "
        "restart it at recovery", hypothesis={**HYPOTHESIS, "grace_s": 3.0},
        checks=[*SPLIT_CHECKS, "time_to_recover",
                {"name": "failover_expected", "params": {
                    "expect": False, "source": "Sentinel docs, 'Quorum'",
                    "published": "with 2 of 3 Sentinels down no failover happens (quorum 2 cannot agree, no "
                                 "majority can authorise one): the primary is unavailable until it returns"}}],
        concurrency=32, topology_options={"appendonly": True}),
]
