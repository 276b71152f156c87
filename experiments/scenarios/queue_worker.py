"""A work-queue consumer as its own process, so an experiment can SIGKILL it mid-batch.

    python -m experiments.scenarios.queue_worker CONFIG.json

Runs one ``patterns.work_queue.Consumer`` against the lab's running topology. The
handler's effect is a row in a SQLite table keyed by job id (INSERT OR IGNORE: an
idempotent effect, so at-least-once delivery gives exactly-once effects); every
successful handling is recorded as a ``process`` operation in the worker's own
history file (flushed per record, so a SIGKILL loses nothing already recorded),
on the experiment's clock (CLOCK_MONOTONIC is shared by all processes). SIGTERM
stops it gracefully (finish the batch, acknowledge, exit 0). Start, readiness, stop,
the run's death and the history are the harness's (``experiments.children``), as for
the lock's slow holder.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path

from experiments.children import ChildProcess, child_main
from experiments.history import OK, WORKER, Op
from patterns.work_queue import Consumer, Job, WorkQueue
from topologies.clients import ClientPolicy

MODULE = "experiments.scenarios.queue_worker"


class EffectStore:
    """The handler's side effect: one row per job id, however often it is delivered."""

    def __init__(self, path: Path) -> None:
        self.lock = threading.Lock()  # one connection, used from worker threads one at a time
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS effects (job_id TEXT PRIMARY KEY, consumer TEXT, at REAL)")

    def apply(self, job_id: str, consumer: str) -> None:
        with self.lock:
            self.conn.execute("INSERT OR IGNORE INTO effects VALUES (?, ?, ?)",
                              (job_id, consumer, time.time()))

    def ids(self) -> list[str]:
        with self.lock:
            return [r[0] for r in self.conn.execute("SELECT job_id FROM effects")]


async def serve(child: ChildProcess) -> None:
    """One consumer until stopped; then it prints its counters (into its log)."""
    cfg = child.cfg
    client = await child.client(ClientPolicy(socket_timeout_s=2.0, connect_timeout_s=0.5, retries=0,
                                             max_connections=256))
    queue = WorkQueue(client, cfg["queue"])
    store = EffectStore(Path(cfg["effects_db"]))
    writer = child.writer
    name = cfg["consumer"]
    client_id = int(cfg["client_id"])

    async def handler(job: Job) -> None:
        start = writer.clock()
        await asyncio.sleep(cfg["handler_ms"] / 1000)  # the work; a kill lands here, mid-batch
        await asyncio.to_thread(store.apply, job.job_id, name)
        end = writer.clock()
        writer.write_op(Op(client_id, "process", {"id": job.job_id, "deliveries": job.deliveries}, start, start,
                           end, writer.wall_at(start), OK, {"consumer": name}, None, None, "worker", kind=WORKER))
        writer.flush()

    consumer = Consumer(queue, name, handler, batch=cfg["batch"], block_ms=500, claim_idle_ms=cfg["claim_idle_ms"],
                        claim_every_s=0.5, max_deliveries=cfg["max_deliveries"], lease_ms=cfg["lease_ms"])
    consumer.start()  # it creates the consumer group itself, and again after a failover that lost it
    child.ready()
    await child.stop.wait()
    await consumer.stop(timeout_s=10)
    print(json.dumps({"consumer": name, "counters": consumer.counters.snapshot()}), flush=True)


if __name__ == "__main__":
    child_main("queue_worker", serve)
