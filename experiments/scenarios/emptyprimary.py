"""The restart the Redis replication docs warn about: a Sentinel primary without persistence,
restarted by a supervisor faster than Sentinel notices (restart delay below
``down-after-milliseconds``). It comes back empty, still the primary, and its replicas
resynchronise from it: the whole dataset is gone, on every node.

Variants: no persistence (restarted after 100 ms), AOF on (same restart: the primary reloads
its dataset), and no persistence restarted after 3 s, longer than detection (Sentinel promotes
a replica first; the old primary rejoins as a replica of it).

Setup seeds a dataset through Sentinel's primary and waits until both replicas have it; the
workload adds unique elements to a set. Each cycle writes ``dataset`` events: every node's
DBSIZE before the crash, and after the restart once the topology settled (every replica linked
to the primary Sentinel names and acknowledging, or 15 s).
"""
from __future__ import annotations

import asyncio
from typing import Any

from experiments import faultplans
from experiments.checks.outages import DATASET
from experiments.final_read import settled_read
from experiments.model import HYPOTHESIS, Experiment, Scenario, app_client
from experiments.scenarios.persistence import SetWritesScenario, dataset_sizes
from faults import kinds, maintenance
from labcommon.errors import NotReadyError
from labcommon.poll import wait_until
from topologies.api import Topology

TIMEOUT_S = 0.25
SEED_KEYS = 5000
SETTLE_S = 15.0  # after the restart, wait at most this long for the replicas to settle
FAST_RESTART_MS = 100
SLOW_RESTART_MS = 3000  # > down-after-milliseconds (1000 in the lab)


def settled(topo: Topology) -> bool:
    """Sentinel names a primary, and every other data node replicates it, online, its last
    acknowledgement at most 1 s old."""
    primary = maintenance.sentinel_primary(topo)
    if primary is None:
        return False
    with maintenance.direct(topo, primary, socket_timeout=1.0, decode_responses=True) as c:
        info = c.info("replication")
    if info.get("role") != "master":
        return False
    linked = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    # online and acknowledging (REPLCONF ACK every second): under writes the offsets never stand still
    return (len(linked) == len(topo.spec.redis_nodes) - 1
            and all(v.get("state") == "online" and int(v.get("lag", 99)) <= 1 for v in linked))


def wait_settled(topo: Topology, timeout_s: float = SETTLE_S) -> bool:
    """True once replication settled (a node still restarting: not yet), False when it did not
    within ``timeout_s`` seconds: a result the caller records, not an error."""
    try:
        wait_until(lambda: settled(topo), timeout_s, "replication settled", interval_s=0.2)
    except NotReadyError:
        return False
    return True


class EmptyPrimaryScenario(SetWritesScenario):
    async def setup(self) -> None:
        self.key = f"empty:{self.ctx.run_id}:set"
        self.cycle = 0
        self.client = await app_client(self.ctx, TIMEOUT_S, warm=16)
        pipe = self.client.pipeline(transaction=False)
        for i in range(0, SEED_KEYS, 500):
            pipe.mset({f"empty:{self.ctx.run_id}:seed:{j}": j for j in range(i, min(SEED_KEYS, i + 500))})
        await pipe.execute()
        await asyncio.to_thread(wait_settled, self.ctx.topo)
        self.seq = 0

    async def after_heal(self) -> None:
        ok = await asyncio.to_thread(wait_settled, self.ctx.topo)
        sizes = await asyncio.to_thread(dataset_sizes, self.ctx.topo)
        self.ctx.writer.event(DATASET, cycle=self.cycle, when="after", sizes=sizes, settled=ok)

    async def finish(self) -> dict[str, Any]:
        try:
            await asyncio.to_thread(wait_settled, self.ctx.topo)
            members = await settled_read(lambda: self.client.smembers(self.key))
            return {"set": sorted(m.decode() if isinstance(m, bytes) else m for m in members)}
        finally:
            await self.client.aclose()


def _restart(down_ms: int) -> Any:
    def plan(topo: Topology, sc: Scenario) -> kinds.Fault:
        return kinds.make("restart", faultplans.primary_of(topo, sc.fault_key()), how="kill", down_ms=down_ms)
    return plan


PUBLISHED = {"source": "Redis docs, replication: 'Safety of replication when master has persistence turned off'"}


def _experiment(name: str, summary: str, down_ms: int, appendonly: bool, expect: str, published: str) -> Experiment:
    checks = ["errors_by_type", "send_lag", "failover_time", "lost_writes",
              {"name": "dataset_after_restart", "params": {"expect": expect, "published": published, **PUBLISHED}}]
    return Experiment(
        name=name, summary=summary, pattern="persistence", topology="sentinel", scenario=EmptyPrimaryScenario,
        fault=_restart(down_ms), fault_label=f"SIGKILL the primary, a supervisor restarts it after {down_ms} ms",
        hypothesis={**HYPOTHESIS, "grace_s": 3.0}, checks=checks, concurrency=32,
        topology_options={"appendonly": appendonly})


EXPERIMENTS = [
    _experiment("empty-primary-restart", "Sentinel primary without persistence restarted faster than Sentinel "
                "detects it: the replicas resync from the empty primary", FAST_RESTART_MS, False, "lost",
                "a primary without persistence restarted before Sentinel detects it comes back empty and its "
                "replicas wipe their copy: the dataset is gone on every node"),
    _experiment("empty-primary-restart-aof", "as empty-primary-restart with AOF on: the primary reloads its "
                "dataset", FAST_RESTART_MS, True, "kept",
                "with persistence on, the restarted primary reloads its dataset and the replicas keep theirs"),
    _experiment("empty-primary-restart-slow", "as empty-primary-restart, restarted after 3 s (longer than "
                "down-after-milliseconds): Sentinel promotes a replica first", SLOW_RESTART_MS, False, "kept",
                "restarted later than Sentinel's detection, the old primary rejoins as a replica of the promoted "
                "one: the dataset survives"),
]
