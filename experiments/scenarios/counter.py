"""Counters on the Cluster (in the spirit of the Redis cluster tutorial's consistency
test): INCR on many keys spread over every slot range; the final values must lie
between the acknowledged and the possible increments per key.

A primary killed under this load shows read/write errors until its replica takes
over, the time to recover, and any acknowledged increments lost because the replica
had not received them yet.
"""
from __future__ import annotations

import random
from typing import Any

from experiments import faultplans
from experiments.final_read import settled_read
from experiments.model import (
    GENERIC_CHECKS,
    HYPOTHESIS,
    Experiment,
    PatternLoad,
    Scenario,
    app_client,
)
from experiments.workload import OpResult, attempt

N_KEYS = 1000
TIMEOUT_S = 0.25


class CounterScenario(Scenario):
    keys_in_prefix = True
    parallel = True  # no in-process state: the counters live in Redis, the final read in the run's process

    async def setup(self) -> None:
        self.client = await app_client(self.ctx, TIMEOUT_S, warm=16)
        self.prefix = f"{self.ctx.topo.key_prefix}ctr:{self.ctx.run_id}"
        self.keys = [f"{self.prefix}:{i}" for i in range(N_KEYS)]

    def fault_key(self) -> str:
        return self.keys[0]

    async def op(self, client_id: int, rng: random.Random) -> OpResult:
        key = self.keys[rng.randrange(N_KEYS)]
        if rng.random() < 0.5:
            return await attempt("incr", {"key": key, "amount": 1}, self.client.incr(key))
        return await attempt("read", {"key": key}, self.client.get(key), read=True)

    async def _read_chunk(self, chunk: list[str]) -> list[Any]:
        """One chunk of the final read (retried while a failover may still settle)."""
        read = self.client.mget_nonatomic if hasattr(self.client, "mget_nonatomic") else self.client.mget
        return list(await settled_read(lambda: read(chunk)))

    async def finish(self) -> dict[str, Any]:
        values: dict[str, float] = {}
        try:
            for i in range(0, N_KEYS, 100):
                chunk = self.keys[i:i + 100]
                got = await self._read_chunk(chunk)
                values.update({k: float(v or 0) for k, v in zip(chunk, got, strict=False)})
        finally:
            await self.client.aclose()
        return {"counters": values}


CHECKS = [{"name": "leaderboard_increments",
           "params": {"incr_op": "incr", "member_arg": "key", "final_key": "counters"}}]
LOAD = PatternLoad(pattern="counter", scenario=CounterScenario, checks=CHECKS,
                   topologies=("cluster", "sentinel", "single"))
EXPERIMENTS = [
    Experiment(name="cluster-counter-kill", summary="1000 INCR counters on the Cluster while a primary is "
               "killed: errors, time to recover, lost increments (cf. the cluster tutorial's test)",
               pattern="counter", topology="cluster", topologies=("sentinel",), scenario=CounterScenario,
               fault=faultplans.kill_primary, fault_label="kill a primary",
               hypothesis=dict(HYPOTHESIS),
               checks=[*GENERIC_CHECKS, *CHECKS]),
]
