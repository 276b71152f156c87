"""The lock scenario: the workload's clients contend for ``N_LOCKS`` named locks, each
operation one critical section (:mod:`.sections`) with a process id of its own
(``SECTION_BASE`` + n), so two sections of one client are never mistaken for one holder.
With option ``slow_holder`` it also starts the slow holder process (:mod:`.holder`) that
the lock-expiry fault (:func:`pause_slow_holder`) arms and pauses.

The workload's own record of an operation is ``lock_section`` (its intended time keeps
the open-loop latency); each step is written at once with the phase its start fell in.
The final state holds the resource's rows (``lock_resource``), the lock counters of every
process (``lock_counters``) and the fence counters read back after the run
(``fence_counters``), so a failover that lost fence increments is visible.
"""
from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from experiments.children import Child
from experiments.history import Op
from experiments.model import RunContext, Scenario, add_counts, app_client
from experiments.scenarios.lock.sections import CLIENT_TIMEOUT_S, TTL_MS, Sections
from experiments.scenarios.lock.store import FencedStore
from experiments.scenarios.lock.variants import Locks, RedlockLocks, close_clients, make_locks
from experiments.workload import OpResult
from faults import kinds
from faults.kinds import Fault
from labcommon.errors import LabError
from patterns.common import tagged
from topologies.api import Topology

N_LOCKS = 4
ARM_TIMEOUT_S = 2.0  # how long the fault plan waits for the slow holder to report its acquire
SECTION_BASE = 1000  # process ids of in-process critical sections: SECTION_BASE + n
SLOW_HOLDER = 500  # process id of the slow holder's sections
HOLDER = "slow-holder"  # the slow holder's child-process name
# its module (python -m): named, not imported, so the package's import never runs ahead of the child's own
HOLDER_MODULE = "experiments.scenarios.lock.holder"


class LockScenario(Scenario):
    # The locks live in Redis, the protected resource in SQLite (shared by processes); each critical
    # section's process id is unique over every generator process (interleaved by share); the slow
    # holder belongs to the run's process.
    parallel = True

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.client: Any = None
        self.store: FencedStore | None = None
        self.locks: Locks | None = None
        self.holder: Child | None = None
        self.n_sections = 0

    async def worker_setup(self) -> None:
        variant = str(self.ctx.options.get("lock", "safe"))
        self.client = await app_client(self.ctx, CLIENT_TIMEOUT_S)
        self.names = [f"{self.ctx.run_id}:{i}" for i in range(N_LOCKS)]
        self.locks = make_locks(variant, self.client, self.names, TTL_MS)
        self.store = FencedStore(self.ctx.run_dir / "resource.sqlite", self.names)
        self.sections = Sections(variant, self.locks, self.store, self.ctx.writer.clock, self.ctx.writer.wall_at,
                                 self._record)

    async def setup(self) -> None:
        await self.worker_setup()
        variant = str(self.ctx.options.get("lock", "safe"))
        if self.ctx.options.get("slow_holder"):
            self.holder = await asyncio.to_thread(
                self.ctx.children.start, HOLDER, HOLDER_MODULE,
                {"variant": variant, "lock": self.names[0], "process": SLOW_HOLDER,
                 "store": str(self.ctx.run_dir / "resource.sqlite")})

    async def worker_finish(self) -> dict[str, Any]:
        counters = self.locks.counters.snapshot() if self.locks is not None else {}
        if self.store is not None:
            self.store.close()
        if self.client is not None:
            await close_clients(self.client)  # the redlock topology's client is one per node
        return {"lock_counters": counters}

    def _record(self, op: Op) -> None:
        """A step, written at once with the phase its start fell in."""
        op.phase = self.ctx.phase_at(op.start)
        self.ctx.writer.write_op(op)

    def fault_key(self) -> str:
        if isinstance(self.locks, RedlockLocks):
            return self.locks.locks[self.names[0]].key
        return f"lock:{tagged(self.names[0])}"  # DistributedLock's key for lock 0

    def fault_target_pid(self) -> int | None:
        return self.holder.pid if self.holder is not None else None

    def arm_slow_holder(self) -> int:
        """Make the slow holder acquire lock 0 and wait (at most ``ARM_TIMEOUT_S``; the fault plan
        runs in a thread) until it reports the outcome, so the pause that follows lands while it
        holds the lock. Returns its pid."""
        if self.holder is None or not self.holder.alive():
            raise LabError("the lock-expiry fault needs the slow holder process", "run with option slow_holder")
        t = time.monotonic()
        report = self.holder.request(ARM_TIMEOUT_S) or {"outcome": "no report"}
        self.ctx.writer.event("slow_holder", action="armed", waited_ms=round((time.monotonic() - t) * 1000, 1),
                              **report)
        return self.holder.pid

    async def op(self, client_id: int, rng: random.Random) -> OpResult:
        lock = self.names[rng.randrange(N_LOCKS)]
        self.n_sections += 1
        share = self.ctx.share  # process ids interleaved over the generator processes: never one id twice
        return await self.sections.run(lock, SECTION_BASE + self.n_sections * share.count + share.index)

    async def finish(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        try:
            if self.holder is not None:
                await asyncio.to_thread(self.ctx.children.stop, HOLDER)
            if self.store is not None:
                state["lock_resource"] = self.store.summary()
            if self.locks is not None:
                state["lock_counters"] = add_counts(self.locks.counters.snapshot(),
                                                    *(w["lock_counters"] for w in self.ctx.worker_states))
                counters = await self.locks.fence_counters()
                if counters is not None:
                    state["fence_counters"] = counters
        finally:
            if self.store is not None:
                self.store.close()
            if self.client is not None:
                await close_clients(self.client)
        return state


def pause_slow_holder(topo: Topology, sc: Scenario) -> Fault:
    """The lock-expiry fault: SIGSTOP the slow holder while it holds lock 0."""
    if not isinstance(sc, LockScenario):
        raise LabError(f"pause_slow_holder needs the lock scenario, not {type(sc).__name__}")
    return kinds.make("client_pause", f"pid:{sc.arm_slow_holder()}")
