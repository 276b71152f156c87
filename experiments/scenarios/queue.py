"""Streams work queue under load: the workload produces jobs (XADD); consumer
*processes* (experiments.scenarios.queue_worker) handle them, and the fault plan
SIGKILLs one of them mid-batch (each cycle, the longest-running live one). Its
delivered-but-unacknowledged entries stay pending until a surviving consumer
claims them (XAUTOCLAIM after ``claim_idle_ms``); a supervisor (``after_heal``)
starts a replacement. The workers' ``process`` records are of kind ``worker``:
they feed ``queue_delivery``, never the producers' headline figures.

Final state for the checks: ``pending`` (ids still unprocessed after the drain)
and ``effects`` (ids in the handler's idempotent store: the ground truth).
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from experiments.children import Child
from experiments.model import SERVED_THROUGH, Experiment, PatternLoad, Scenario, app_client
from experiments.scenarios import queue_worker
from experiments.scenarios.queue_worker import EffectStore
from experiments.workload import OpResult, attempt
from faults import kinds
from labcommon.errors import NotReadyError
from labcommon.poll import wait_until_async
from patterns.work_queue import WorkQueue

CONSUMERS = 2
HANDLER_MS = 20  # each job takes this long: a kill always lands mid-batch
BATCH = 10
CLAIM_IDLE_MS = 2000  # a dead consumer's entries are claimed after this idle time
# A job's lease outlives a failover (about 3 s here), so an ack that fails during one is retried by its own
# consumer before another may claim the job: no second run of its handler (patterns/README.md, work queue).
LEASE_MS = 6000
DRAIN_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 15.0


class QueueScenario(Scenario):
    # Producers only: a job id is its client's own sequence (c<client>-<n>), and a client's operations all
    # run in one generator process; the group, the consumers and the drain belong to the run's process.
    parallel = True

    async def worker_setup(self) -> None:
        self.client = await app_client(self.ctx, 1.0, 0.5)
        self.queue = WorkQueue(self.client, f"exp-{self.ctx.run_id}")
        self.seq: dict[int, int] = {}

    async def setup(self) -> None:
        await self.worker_setup()
        await self.queue.ensure_group()
        self.effects_db = self.ctx.run_dir / "effects.sqlite"
        EffectStore(self.effects_db)  # create the table before workers race to
        self.workers: list[Child] = []  # in start order
        for _ in range(CONSUMERS):
            await asyncio.to_thread(self._start_worker)

    def _start_worker(self) -> None:
        n = len(self.workers) + 1
        name = f"consumer-{n}"
        self.workers.append(self.ctx.children.start(name, queue_worker.MODULE, {
            "queue": self.queue.name, "consumer": name, "client_id": 1000 + n,
            "effects_db": str(self.effects_db), "handler_ms": HANDLER_MS, "batch": BATCH,
            "claim_idle_ms": CLAIM_IDLE_MS, "lease_ms": LEASE_MS, "max_deliveries": 10}))

    def _live(self) -> list[int]:
        return [w.pid for w in self.workers if w.alive()]

    def fault_key(self) -> str:
        return self.queue.stream_key

    def fault_target_pid(self) -> int | None:
        """The longest-running live consumer (a new one each cycle: the killed one is replaced)."""
        live = self._live()
        return live[0] if live else None

    async def op(self, client_id: int, rng: Any) -> OpResult:
        n = self.seq.get(client_id, 0)
        self.seq[client_id] = n + 1
        job_id = f"c{client_id}-{n}"
        return await attempt("produce", {"id": job_id}, self.queue.enqueue({"n": n}, job_id=job_id))

    async def after_heal(self) -> None:
        if len(self._live()) < CONSUMERS:
            await asyncio.to_thread(self._start_worker)

    async def _drained(self) -> bool:
        pending = await self.client.xpending(self.queue.stream_key, self.queue.group)
        groups = await self.client.xinfo_groups(self.queue.stream_key)
        lag = next((g.get("lag") for g in groups if g.get("name") in (self.queue.group, self.queue.group.encode())),
                   None)
        return int(pending["pending"]) == 0 and (lag is None or int(lag) == 0)

    async def finish(self) -> dict[str, Any]:
        with contextlib.suppress(NotReadyError):  # jobs left over: what queue_delivery judges
            await wait_until_async(self._drained, DRAIN_TIMEOUT_S, "the queue drained", interval_s=0.2)
        for worker in self.workers:
            await asyncio.to_thread(self.ctx.children.stop, worker.name, WORKER_STOP_TIMEOUT_S)
        effects = EffectStore(self.effects_db).ids()  # every worker has stopped: nothing can be added now
        pending = await self._unprocessed(set(effects))
        await self.client.aclose()
        return {"pending": pending, "effects": effects}

    async def _unprocessed(self, done: set[str]) -> list[str]:
        """Job ids still in the stream and not in the effect store after the drain."""
        entries = await self.client.xrange(self.queue.stream_key, count=1_000_000)
        ids = []
        for _eid, fields in entries:
            job = fields.get(b"job_id", fields.get("job_id"))
            job = job.decode() if isinstance(job, bytes) else job
            if job and job not in done:
                ids.append(job)
        return ids


CHECKS = [{"name": "queue_delivery", "params": {"max_stuck": 0}}]
# Through a primary fault, a job's lease outlives the failover: a failed ack is retried by its own consumer,
# never run again by another. (A consumer killed between its effect and its ack is the documented exception:
# delivery is at least once, and the effect store keeps one effect; queue-consumer-kill shows it.)
LOAD = PatternLoad(pattern="work-queue", scenario=QueueScenario, rate_factor=0.5,
                   checks=[{"name": "queue_delivery", "params": {"max_stuck": 0, "allow_duplicates": False}}])
EXPERIMENTS = [
    Experiment(
        name="queue-consumer-kill",
        summary="Streams work queue while a consumer process is SIGKILLed mid-batch: "
                "is any acknowledged message lost, how many redeliveries, how long?",
        pattern="work-queue", topology="single", topologies=("sentinel", "cluster"),
        scenario=QueueScenario,
        fault=lambda topo, sc: kinds.make("client_kill", f"pid:{sc.fault_target_pid()}"),
        fault_label="SIGKILL a consumer process",
        hypothesis=dict(SERVED_THROUGH),  # producers never depend on consumers: served through the fault
        checks=["steady_state", "errors_by_type", "send_lag", *CHECKS],
    ),
]
