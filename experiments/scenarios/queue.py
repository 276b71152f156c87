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
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from experiments.history import Op, iter_records
from experiments.model import SERVED_THROUGH, Experiment, PatternLoad, Scenario, app_client
from experiments.scenarios.queue_worker import EffectStore
from experiments.workload import OpResult, attempt
from faults import catalog
from patterns.work_queue import WorkQueue
from topologies.errors import LabError
from topologies.health import wait_until

CONSUMERS = 2
HANDLER_MS = 20  # each job takes this long: a kill always lands mid-batch
BATCH = 10
CLAIM_IDLE_MS = 2000  # a dead consumer's entries are claimed after this idle time
DRAIN_TIMEOUT_S = 60.0


class QueueScenario(Scenario):
    async def setup(self) -> None:
        self.client = await app_client(self.ctx.topo, 1.0, 0.5)
        self.queue = WorkQueue(self.client, f"exp-{self.ctx.run_id}")
        await self.queue.ensure_group()
        self.effects_db = self.ctx.run_dir / "effects.sqlite"
        EffectStore(self.effects_db)  # create the table before workers race to
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.seq: dict[int, int] = {}
        for _ in range(CONSUMERS):
            self._start_worker()

    def _start_worker(self) -> None:
        name = f"consumer-{len(self.workers) + 1}"
        cfg = {"queue": self.queue.name, "consumer": name, "client_id": 1000 + len(self.workers),
               "effects_db": str(self.effects_db), "history": str(self.ctx.run_dir / f"worker-{name}.jsonl"),
               "t0": self.ctx.writer.t0, "handler_ms": HANDLER_MS, "batch": BATCH,
               "claim_idle_ms": CLAIM_IDLE_MS, "max_deliveries": 10,
               "ready_file": str(self.ctx.run_dir / f"worker-{name}.ready")}
        path = self.ctx.run_dir / f"worker-{name}.json"
        path.write_text(json.dumps(cfg))
        log = open(self.ctx.run_dir / f"worker-{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "experiments.scenarios.queue_worker", str(path)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.workers[name] = proc
        wait_until(lambda: Path(cfg["ready_file"]).exists() or proc.poll() is not None, 30, f"worker {name}")
        if proc.poll() is not None:
            raise LabError(f"worker {name} exited at start (code {proc.returncode})",
                           f"see {self.ctx.run_dir / f'worker-{name}.log'}")
        self.ctx.writer.event("worker", name=name, pid=proc.pid, action="start")

    def fault_key(self) -> str:
        return self.queue.stream_key

    def fault_target_pid(self) -> int | None:
        """The longest-running live consumer (a new one each cycle: the killed one is replaced)."""
        live = [p for p in self.workers.values() if p.poll() is None]
        return live[0].pid if live else None

    async def op(self, client_id: int, rng: Any) -> OpResult:
        n = self.seq.get(client_id, 0)
        self.seq[client_id] = n + 1
        job_id = f"c{client_id}-{n}"
        return await attempt("produce", {"id": job_id}, self.queue.enqueue({"n": n}, job_id=job_id))

    async def after_heal(self) -> None:
        if sum(p.poll() is None for p in self.workers.values()) < CONSUMERS:
            await asyncio.to_thread(self._start_worker)

    async def _drained(self) -> bool:
        pending = await self.client.xpending(self.queue.stream_key, self.queue.group)
        groups = await self.client.xinfo_groups(self.queue.stream_key)
        lag = next((g.get("lag") for g in groups if g.get("name") in (self.queue.group, self.queue.group.encode())),
                   None)
        return int(pending["pending"]) == 0 and (lag is None or int(lag) == 0)

    async def finish(self) -> dict[str, Any]:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and not await self._drained():
            await asyncio.sleep(0.2)
        store = EffectStore(self.effects_db)
        effects = store.ids()
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.workers.items():
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
            self.ctx.writer.event("worker", name=name, pid=proc.pid, action="exit", code=proc.returncode)
        self._merge_worker_histories()
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

    def _merge_worker_histories(self) -> None:
        for path in sorted(self.ctx.run_dir.glob("worker-*.jsonl")):
            for record in iter_records(path):
                if record.get("type") == "op":
                    self.ctx.writer.write_op(Op.from_json(record))
            path.unlink()


CHECKS = [{"name": "queue_delivery", "params": {"max_stuck": 0}}]
LOAD = PatternLoad(pattern="work-queue", scenario=QueueScenario, checks=CHECKS, rate_factor=0.5)
EXPERIMENTS = [
    Experiment(
        name="queue-consumer-kill",
        summary="Streams work queue while a consumer process is SIGKILLed mid-batch: "
                "is any acknowledged message lost, how many redeliveries, how long?",
        pattern="work-queue", topology="single", topologies=("sentinel", "cluster"),
        scenario=QueueScenario,
        fault=lambda topo, sc: catalog.make("client_kill", f"pid:{sc.fault_target_pid()}"),
        fault_label="SIGKILL a consumer process",
        hypothesis=dict(SERVED_THROUGH),  # producers never depend on consumers: served through the fault
        checks=["steady_state", "errors_by_type", "send_lag", *CHECKS],
    ),
]
