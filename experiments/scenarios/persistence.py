"""What survives a crash: a single node under writes, SIGKILLed and restarted, with each
persistence mode (Redis persistence docs: RDB snapshots lose the writes since the last
snapshot, AOF ``everysec`` about a second, AOF ``always`` none, no persistence everything).

Each variant runs on a topology of its own (AOF is a start-up option, and a dump file left
behind would come back at another experiment's restart). Setup seeds a dataset (hashes, so
the restart has something to load) and makes it durable; the workload adds unique elements to
a set (SADD). ``CONFIG SET`` applies the mode's fsync policy and snapshot rule, again after
every restart (the command line's defaults come back with the process).

Recorded per cycle: ``dataset`` events (DBSIZE before the kill, after the restart) and a
``restart_ready`` event (seconds from the start of the new process to its first PONG: the
loading time). Checks: ``lost_writes`` and ``persistence_loss`` (the mode's bound).
"""
from __future__ import annotations

import asyncio
import random
from typing import Any

from experiments import faultplans
from experiments.checks.outages import DATASET, RESTART_READY
from experiments.final_read import settled_read
from experiments.model import HYPOTHESIS, Experiment, Scenario, app_client
from experiments.workload import OpResult, attempt
from faults import maintenance
from labcommon.poll import wait_until
from topologies.api import Topology

TIMEOUT_S = 0.25
SEED_HASHES = 200  # the seeded dataset: 200 hashes x 1000 fields x 64 bytes (~15 MB to load)
SEED_FIELDS = 1000
SNAPSHOT_EVERY_S = 2  # RDB: `save 2 1`, a snapshot every 2 s when anything changed
MODES = {  # mode: (appendonly, CONFIG SET pairs)
    "none": (False, {}),
    "rdb": (False, {"save": f"{SNAPSHOT_EVERY_S} 1"}),
    "aof-everysec": (True, {"appendfsync": "everysec"}),
    "aof-always": (True, {"appendfsync": "always"}),
}
BOUNDS_S = {"rdb": SNAPSHOT_EVERY_S + 1.5, "aof-everysec": 2.0}  # everysec: up to 2 s (Redis docs)


def dataset_sizes(topo: Topology) -> dict[str, int | None]:
    """DBSIZE of every data node (None: it did not answer)."""
    out: dict[str, int | None] = {}
    for n in topo.spec.redis_nodes:
        try:
            with maintenance.direct(topo, n.name, socket_timeout=2.0) as c:
                out[n.name] = int(c.dbsize())
        except Exception:  # noqa: BLE001 - a node that does not answer has no size
            out[n.name] = None
    return out


class SetWritesScenario(Scenario):
    """Adds unique elements to one set (``self.key``, set by ``setup``) and records every data
    node's dataset size before each fault (``dataset`` events)."""

    key: str
    client: Any
    seq = 0
    cycle = 0

    def fault_key(self) -> str:
        return self.key

    async def op(self, client_id: int, rng: random.Random) -> OpResult:
        self.seq += 1
        element = f"{client_id}-{self.seq}"
        return await attempt("add", {"value": element}, self.client.sadd(self.key, element))

    async def before_fault(self, cycle: int) -> None:
        self.cycle = cycle
        sizes = await asyncio.to_thread(dataset_sizes, self.ctx.topo)
        self.ctx.writer.event(DATASET, cycle=cycle, when="before", sizes=sizes)


class PersistenceScenario(SetWritesScenario):
    async def setup(self) -> None:
        self.mode = str(self.ctx.options["persistence"])
        self.node = self.ctx.topo.spec.redis_nodes[0].name
        self.key = f"persist:{self.ctx.run_id}:set"
        self.cycle = 0
        self.client = await app_client(self.ctx, TIMEOUT_S, warm=16)
        await asyncio.to_thread(self._configure)
        await asyncio.to_thread(self._seed)
        self.seq = 0

    def _configure(self) -> None:
        with maintenance.direct(self.ctx.topo, self.node) as c:
            for k, v in MODES[self.mode][1].items():
                c.config_set(k, v)

    def _seed(self) -> None:
        value = "v" * 64
        with maintenance.direct(self.ctx.topo, self.node, socket_timeout=60) as c:
            pipe = c.pipeline(transaction=False)
            for h in range(SEED_HASHES):
                pipe.hset(f"persist:{self.ctx.run_id}:seed:{h}",
                          mapping={f"f{i}": value for i in range(SEED_FIELDS)})
            pipe.execute()
            if self.mode == "rdb":
                before = c.lastsave()
                c.bgsave()
                wait_until(lambda: c.lastsave() != before, 60, "the seed snapshot")

    async def after_heal(self) -> None:
        topo = self.ctx.topo
        ready_s = await asyncio.to_thread(maintenance.wait_answers, topo, self.node)
        self.ctx.writer.event(RESTART_READY, cycle=self.cycle, node=self.node, ready_s=ready_s)
        await asyncio.to_thread(self._configure)  # the command line's defaults came back with the process
        sizes = await asyncio.to_thread(dataset_sizes, topo)
        self.ctx.writer.event(DATASET, cycle=self.cycle, when="after", sizes=sizes)

    async def finish(self) -> dict[str, Any]:
        try:
            members = await settled_read(lambda: self.client.smembers(self.key))  # the node may still be loading
            return {"set": sorted(m.decode() if isinstance(m, bytes) else m for m in members)}
        finally:
            await self.client.aclose()


def _experiment(mode: str) -> Experiment:
    appendonly, _config = MODES[mode]
    checks = ["steady_state", "errors_by_type", "send_lag", "time_to_recover", "lost_writes",
              {"name": "persistence_loss", "params": {"mode": mode, "bound_s": BOUNDS_S.get(mode)}}]
    return Experiment(
        name=f"persistence-{mode}",
        summary=f"single node under writes, SIGKILLed and restarted, persistence {mode}: acknowledged writes "
                "lost, loading time, write latency",
        pattern="persistence", topology="single", scenario=PersistenceScenario, fault=faultplans.kill_primary,
        fault_label="SIGKILL the node (restarted at recovery)",
        hypothesis={**HYPOTHESIS, "grace_s": 2.0}, checks=checks, options={"persistence": mode}, concurrency=32,
        topology_options={"appendonly": appendonly})


EXPERIMENTS = [_experiment(m) for m in MODES]
