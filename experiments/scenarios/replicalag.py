"""Replica reads under replication lag: the leaderboard reading from a replica
(``Leaderboard.replica_read``) while the primary's replication link is slowed (latency on the
primary's own proxy, downstream: what the replicas and Sentinels receive from it; the
application reaches the primary and the replica through client group ``a``'s proxies, which
the fault does not touch).

Every replica read is checked against the increments acknowledged before it began
(``replica_staleness``): stale reads counted, their staleness bounded by the replication delay,
and compared with what the pattern itself flagged (``ReadResult.stale``).
"""
from __future__ import annotations

import asyncio
import random
from typing import Any

from experiments import faultplans
from experiments.model import GENERIC_CHECKS, HYPOTHESIS, Experiment, Scenario, app_policy, warm_up
from experiments.workload import OpResult, attempt
from faults import kinds
from patterns.common import RetryPolicy
from patterns.leaderboard import Leaderboard
from topologies.api import Topology

TIMEOUT_S = 0.25
LAG_MS = 500  # below down-after-milliseconds (1000): Sentinel keeps the primary
N_MEMBERS = 50


class ReplicaLagScenario(Scenario):
    async def setup(self) -> None:
        topo = self.ctx.topo
        primary = await asyncio.to_thread(faultplans.primary_of, topo)
        self.replica_name = next(n.name for n in topo.spec.redis_nodes if n.name != primary)
        policy = self.ctx.client_policy = app_policy(TIMEOUT_S)  # the primary's and the replica's client alike
        self.client = topo.client(asyncio=True, group="a", policy=policy)
        self.replica = topo.node_client(self.replica_name, asyncio=True, group="a", policy=policy)
        await warm_up(self.client, 16)
        await warm_up(self.replica, 16)
        self.board = Leaderboard(self.client, f"lag-{self.ctx.run_id}", replica=self.replica,
                                 retry=RetryPolicy.none())

    def fault_key(self) -> str:
        return self.board.key()

    async def op(self, client_id: int, rng: random.Random) -> OpResult:
        member = f"p{rng.randrange(N_MEMBERS)}"
        if rng.random() < 0.5:
            amount = rng.randint(1, 5)
            return await attempt("zincrby", {"member": member, "amount": amount}, self.board.incr(member, amount))
        res = await attempt("replica_read", {"member": member}, self.board.replica_read("score", member), read=True)
        if res.value is None:
            return res
        r = res.value
        return res._replace(value={"score": r.value, "source": r.source, "stale": r.stale, "lag_bytes": r.lag_bytes},
                            node=self.replica_name if r.source == "replica" else None)

    async def finish(self) -> dict[str, Any]:
        try:
            entries = await self.board.page(1, N_MEMBERS * 2)
            return {"scores": {e.member: e.score for e in entries},
                    "board_counters": self.board.counters.snapshot()}
        finally:
            await self.client.aclose()
            await self.replica.aclose()


def _slow_replication(topo: Topology, sc: Scenario) -> kinds.Fault:
    return kinds.make("latency", faultplans.primary_of(topo, sc.fault_key()), latency_ms=LAG_MS,
                        direction="downstream")


EXPERIMENTS = [
    Experiment(
        name="replica-read-lag", summary=f"leaderboard reads from a replica while replication lags by {LAG_MS} ms: "
        "stale reads counted and bounded, against what the pattern flags", pattern="quorum", topology="sentinel",
        scenario=ReplicaLagScenario, fault=_slow_replication,
        fault_label=f"{LAG_MS} ms latency on the primary's replication link", hypothesis=dict(HYPOTHESIS),
        checks=[*GENERIC_CHECKS, "leaderboard_increments",
                {"name": "replica_staleness", "params": {"max_stale_s": LAG_MS / 1000 + 0.5}}]),
]
