"""Distributed lock under load: clients contend for ``N_LOCKS`` named locks; each
operation is one critical section: acquire -> a write to the protected resource
(a SQLite row per lock, shared by every process) carrying the fencing token ->
release.

Variants (option ``lock``):

* ``safe``: ``DistributedLock``; the resource accepts a write only if its token is
  above the highest it has seen, or equal to it from the same holder (fencing; an
  equal token from another holder is a reused fence, rejected and counted);
* ``nofence``: the same lock; the resource ignores tokens (it still counts the
  stale writes it accepted, in the final state);
* ``naive``: ``NaiveIncrLock`` (INCR + EXPIRE, no token), the baseline;
* ``redlock``: ``patterns.redlock.Redlock`` over the ``redlock`` topology's five
  independent primaries (a majority of grants, a validity time, no fencing token):
  the resource has nothing to fence with, as with ``naive``.

Records, for ``experiments.checks.lock``. Every critical section gets its own
process id (``SECTION_BASE`` + n), so two sections of one workload client are
never mistaken for one holder:

* ``acquire`` ``{"lock", "ttl_s"}``: ok ``{"token": n}`` (naive: null); the lock
  still busy at the acquire deadline -> fail ``LockTimeout``;
* ``fenced_write`` ``{"lock", "token", "holder"}``: ok ``{"accepted": bool}`` (naive and
  redlock: op ``write`` ``{"lock"}``, no token to fence with);
* ``release`` ``{"lock"}``: ok ``{"released": bool}`` (False: it had expired).

The workload's own record of the operation is ``lock_section`` (its intended time
keeps the open-loop latency); its outcome is the first step that was not ok. The
steps are records of kind ``step``: they feed the lock checks, never the headline
figures; each is written with the phase its start fell in. The final state holds the fence
counters read back after the run (``fence_counters``), so a failover that lost
fence increments is visible.

Lock-expiry showcase (option ``slow_holder``): a holder *process* (this module run
as ``python -m experiments.scenarios.lock CONFIG.json``, through
``experiments.children``) idles until SIGUSR1, then
acquires lock 0, reports it holds it, "works" until it has been paused and resumed
(SIGCONT; at most ``WORK_TIMEOUT_S``) and writes with its token. The fault plan
:func:`pause_slow_holder` triggers it, waits until it holds the lock and SIGSTOPs it for
the whole fault phase, far beyond ``TTL_MS``; the
in-process clients take lock 0 over meanwhile. When resumed, the holder writes
with its stale token: ``safe`` rejects it, ``nofence`` accepts it.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from experiments.children import Child, child_writer, config_from_argv, ready, serve_until_stopped
from experiments.history import (
    FAIL,
    OK,
    STEP,
    UNKNOWN,
    Op,
    Outcome,
)
from experiments.model import (
    HYPOTHESIS,
    Experiment,
    PatternLoad,
    RunContext,
    Scenario,
    add_counts,
    app_client,
)
from experiments.workload import OpResult, attempt, classify, run_loop
from faults import kinds
from faults.kinds import Fault
from labcommon.errors import LabError, UnknownNameError
from patterns import redlock
from patterns.common import REDIS_FAILURES, Counters, RetryPolicy, prepare_client, tagged
from patterns.lock import (
    COUNTERS,
    DistributedLock,
    Lease,
    LockTimeout,
    NaiveIncrLock,
)
from topologies import api
from topologies.api import Topology

VARIANTS = ("safe", "nofence", "naive", "redlock")
UNFENCED = ("naive", "redlock")  # variants without a fencing token: the resource cannot refuse a stale write
N_LOCKS = 4
TTL_MS = 2000  # lock TTL; the naive lock's EXPIRE takes whole seconds, so keep it a multiple of 1000
ACQUIRE_TIMEOUT_S = 0.5  # a blocking acquire gives up (LockTimeout) after this
CLIENT_TIMEOUT_S = 0.5  # socket timeout
WORK_TIMEOUT_S = 60.0  # the slow holder "works" until resumed from its pause, at most this long
ARM_TIMEOUT_S = 2.0  # how long the fault plan waits for the slow holder to report its acquire
SECTION_BASE = 1000  # process ids of in-process critical sections: SECTION_BASE + n
SLOW_HOLDER = 500  # process id of the slow holder's sections
HOLDER = "slow-holder"  # the slow holder's child-process name
MODULE = "experiments.scenarios.lock"


def classify_lock_error(exc: BaseException) -> tuple[Outcome, str]:
    """``LockTimeout`` (still busy at the deadline) certainly did not acquire: fail (its
    name alone would read as a timeout). Everything else as ``classify`` judges it (a
    ``LockUnavailable`` by its Redis cause: a timeout may have acquired)."""
    if isinstance(exc, LockTimeout):
        return FAIL, "LockTimeout"
    return classify(exc)


# -- the protected resource ------------------------------------------------------------------

class FencedStore:
    """The resource the lock protects: one SQLite row per lock, shared by processes.

    ``fenced``: a write is accepted only if its token is above the highest token
    seen, or equal to it from the holder that wrote it (a read-then-write inside one
    ``BEGIN IMMEDIATE`` transaction). An equal token from another holder is a reused
    fence (the counter went back): rejected, and counted in ``reused``. Unfenced:
    every write is accepted; a stale or reused one is counted in ``stale_accepted``."""

    def __init__(self, path: Path, locks: list[str]) -> None:
        self._mutex = threading.Lock()  # one connection, used from worker threads one at a time
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS resource (lock TEXT PRIMARY KEY, fence INTEGER NOT NULL, "
                           "holder TEXT, value TEXT, writes INTEGER NOT NULL, rejected INTEGER NOT NULL, "
                           "reused INTEGER NOT NULL, stale_accepted INTEGER NOT NULL)")
        self._conn.executemany("INSERT OR IGNORE INTO resource VALUES (?, 0, NULL, NULL, 0, 0, 0, 0)",
                               [(n,) for n in locks])

    def write(self, lock: str, token: int | None, holder: str | None, value: str, fenced: bool) -> bool:
        """Write ``value`` under ``token`` held by ``holder`` (None: no token, as with the naive
        lock); True = accepted."""
        with self._mutex:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT fence, holder FROM resource WHERE lock = ?", (lock,)).fetchone()
                if row is None:
                    raise LabError(f"no resource row for lock {lock!r}")
                reused = token is not None and token == row[0] and holder != row[1]
                stale = token is not None and (token < row[0] or reused)
                if fenced and stale:
                    self._conn.execute("UPDATE resource SET rejected = rejected + 1, reused = reused + ? "
                                       "WHERE lock = ?", (int(reused), lock))
                else:
                    newer = token is not None and token >= row[0]
                    self._conn.execute(
                        "UPDATE resource SET fence = max(fence, ?), holder = CASE WHEN ? THEN ? ELSE holder END, "
                        "value = ?, writes = writes + 1, reused = reused + ?, stale_accepted = stale_accepted + ? "
                        "WHERE lock = ?", (token or 0, int(newer), holder, value, int(reused), int(stale), lock))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return not (fenced and stale)

    def summary(self) -> dict[str, dict[str, Any]]:
        with self._mutex:
            rows = self._conn.execute("SELECT lock, fence, value, writes, rejected, reused, stale_accepted "
                                      "FROM resource")
            return {r[0]: {"fence": r[1], "value": r[2], "writes": r[3], "rejected": r[4], "reused": r[5],
                           "stale_accepted": r[6]} for r in rows}

    def close(self) -> None:
        with self._mutex:
            self._conn.close()


# -- the lock variants behind one interface --------------------------------------------------

@dataclass(frozen=True)
class Grant:
    """A (probable) acquisition: the fencing token (None for the naive lock) and the lease."""

    lock: str
    token: int | None
    lease: Lease | redlock.RedlockLease | None = None

    @property
    def holder(self) -> str | None:
        """Who holds it: the lease's random token (None for the naive lock)."""
        return self.lease.token if self.lease is not None else None


class Locks(Protocol):
    counters: Counters

    async def acquire(self, lock: str, timeout_s: float) -> Grant: ...

    async def release(self, grant: Grant) -> bool: ...

    async def fence_counters(self) -> dict[str, int] | None: ...


class TokenLocks:
    """``DistributedLock`` per name, one attempt per Redis call (the acquire loop
    itself retries until its deadline), one set of counters for all."""

    def __init__(self, client: Any, names: list[str], ttl_ms: int) -> None:
        self.counters = Counters(COUNTERS)
        self.locks = {n: DistributedLock(client, n, ttl_ms=ttl_ms, retry=RetryPolicy.none(), counters=self.counters)
                      for n in names}

    async def acquire(self, lock: str, timeout_s: float) -> Grant:
        lease = await self.locks[lock].acquire(timeout_s)
        return Grant(lock, lease.fence, lease)

    async def release(self, grant: Grant) -> bool:
        assert isinstance(grant.lease, Lease)  # DistributedLock hands out a Lease
        return await self.locks[grant.lock].release(grant.lease)

    async def fence_counters(self) -> dict[str, int] | None:
        """Each lock's fence counter as the current primary has it now (None if it cannot be read)."""
        try:
            return {name: int(await lock.client.get(lock.fence_key) or 0) for name, lock in self.locks.items()}
        except REDIS_FAILURES:
            return None


class NaiveLocks:
    """``NaiveIncrLock`` per name, polled until the deadline (it has no blocking acquire)."""

    def __init__(self, client: Any, names: list[str], ttl_ms: int) -> None:
        self.counters = Counters(("acquired", "busy", "released", "timeouts"))
        self.locks = {n: NaiveIncrLock(client, n, ttl_s=max(1, ttl_ms // 1000)) for n in names}

    async def acquire(self, lock: str, timeout_s: float) -> Grant:
        deadline = time.monotonic() + timeout_s
        while True:
            if await self.locks[lock].try_acquire():
                self.counters.inc("acquired")
                return Grant(lock, None)
            self.counters.inc("busy")
            if time.monotonic() >= deadline:
                self.counters.inc("timeouts")
                raise LockTimeout(f"{self.locks[lock].key} not acquired within {timeout_s}s")
            await asyncio.sleep(random.uniform(0.002, 0.02))

    async def release(self, grant: Grant) -> bool:
        await self.locks[grant.lock].release()  # a bare DEL: it cannot tell whether the lock was still ours
        self.counters.inc("released")
        return True

    async def fence_counters(self) -> dict[str, int] | None:
        return None  # no fence at all


class RedlockLocks:
    """``Redlock`` per name over the independent nodes' clients (the ``redlock`` topology)."""

    def __init__(self, clients: list[Any], names: list[str], ttl_ms: int) -> None:
        self.counters = Counters(redlock.COUNTERS)
        self.locks = {n: redlock.Redlock(clients, n, ttl_ms=ttl_ms, counters=self.counters) for n in names}

    async def acquire(self, lock: str, timeout_s: float) -> Grant:
        return Grant(lock, None, await self.locks[lock].acquire(timeout_s))

    async def release(self, grant: Grant) -> bool:
        """True when a majority still held our token (False: the validity had run out)."""
        assert isinstance(grant.lease, redlock.RedlockLease)
        lk = self.locks[grant.lock]
        return await lk.release(grant.lease) >= lk.quorum

    async def fence_counters(self) -> dict[str, int] | None:
        return None  # Redlock has no fencing token


def make_locks(variant: str, client: Any, names: list[str], ttl_ms: int) -> Locks:
    """The variant's locks; ``redlock`` needs the redlock topology's list of node clients."""
    if variant not in VARIANTS:
        raise UnknownNameError("lock variant", variant, VARIANTS)
    if (variant == "redlock") != isinstance(client, list):
        raise LabError(f"lock variant {variant!r} needs the "
                       + ("redlock topology (independent nodes)" if variant == "redlock" else
                          "single, sentinel or cluster topology"), "choose it with --topology")
    if variant == "redlock":
        return RedlockLocks(client, names, ttl_ms)
    return NaiveLocks(client, names, ttl_ms) if variant == "naive" else TokenLocks(client, names, ttl_ms)


async def close_clients(client: Any) -> None:
    """Close the scenario's client (the redlock topology's: one per node)."""
    if isinstance(client, list):
        await redlock.aclose_all(client)
    else:
        await client.aclose()


# -- one critical section, recorded step by step ---------------------------------------------

class Sections:
    """Runs critical sections (acquire -> write -> release) and records each step as an op."""

    def __init__(self, variant: str, locks: Locks, store: FencedStore, clock: Callable[[], float],
                 wall_at: Callable[[float], float], record: Callable[[Op], None]) -> None:
        self.variant = variant
        self.locks = locks
        self.store = store
        self.clock = clock
        self.wall_at = wall_at
        self.record = record

    async def _step(self, process: int, name: str, args: dict[str, Any], awaitable: Awaitable[Any],
                    value: Callable[[Any], Any]) -> tuple[Op, Any]:
        """Await one step and record it; a cancelled step is recorded ``unknown`` (it may have happened)."""
        start = self.clock()
        try:
            res = await attempt(name, args, awaitable, classify=classify_lock_error)
        except asyncio.CancelledError:
            self.record(Op(process, name, args, start, start, self.clock(), self.wall_at(start), UNKNOWN,
                           None, "cancelled", kind=STEP))
            raise
        shown = value(res.value) if res.outcome == OK else None
        op = Op(process, name, args, start, start, self.clock(), self.wall_at(start), res.outcome, shown, res.error,
                kind=STEP)
        self.record(op)
        return op, res.value

    async def run(self, lock: str, process: int, work: Callable[[], Awaitable[None]] | None = None,
                  on_acquire: Callable[[Op], None] | None = None) -> OpResult:
        """One critical section; returns its summary (``lock_section``). The lock is
        released whatever the write did."""
        summary_args = {"lock": lock, "process": process}
        acq, grant = await self._step(process, "acquire", {"lock": lock, "ttl_s": TTL_MS / 1000},
                                      self.locks.acquire(lock, ACQUIRE_TIMEOUT_S),
                                      lambda g: {"token": g.token, "holder": g.holder})
        if on_acquire is not None:
            on_acquire(acq)
        if acq.outcome != OK:
            return OpResult("lock_section", summary_args, None, acq.outcome, acq.error)
        if work is not None:
            await work()
        if self.variant in UNFENCED:
            op, args = "write", {"lock": lock}
        else:
            op, args = "fenced_write", {"lock": lock, "token": grant.token, "holder": grant.holder}
        write, _ = await self._step(
            process, op, args,
            asyncio.to_thread(self.store.write, lock, grant.token, grant.holder, f"p{process}", self.variant == "safe"),
            lambda accepted: {"accepted": bool(accepted)})
        rel, _ = await self._step(process, "release", {"lock": lock}, self.locks.release(grant),
                                  lambda released: {"released": bool(released)})
        worst = next((s for s in (write, rel) if s.outcome != OK), None)
        value = {"token": grant.token, "accepted": (write.value or {}).get("accepted"),
                 "released": (rel.value or {}).get("released")}
        return OpResult("lock_section", summary_args, value, worst.outcome if worst else OK,
                        worst.error if worst else None)


# -- the scenario ----------------------------------------------------------------------------

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
                self.ctx.children.start, HOLDER, MODULE,
                {"variant": variant, "lock": self.names[0], "process": SLOW_HOLDER,
                 "store": str(self.ctx.run_dir / "resource.sqlite"),
                 "acquired_file": str(self.ctx.run_dir / f"{HOLDER}.acquired")})

    async def worker_finish(self) -> dict[str, Any]:
        counters = self.locks.counters.snapshot() if self.locks is not None else {}
        if self.store is not None:
            self.store.close()
        if self.client is not None:
            await self.client.aclose()
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
        acquired = self.ctx.run_dir / f"{HOLDER}.acquired"
        acquired.unlink(missing_ok=True)
        t = time.monotonic()
        self.holder.proc.send_signal(signal.SIGUSR1)
        while not acquired.exists() and time.monotonic() - t < ARM_TIMEOUT_S and self.holder.alive():
            time.sleep(0.002)
        report = json.loads(acquired.read_text()) if acquired.exists() else {"outcome": "no report"}
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


# -- the slow holder process -----------------------------------------------------------------

async def holder_main(cfg: dict[str, Any]) -> None:
    """Idle until SIGUSR1, then one slow critical section on ``cfg["lock"]``; SIGTERM
    (or the parent's death) stops it, after the section in progress."""
    topo = api.current()
    if topo is None:
        raise SystemExit("slow holder: no topology is up")
    client = topo.client(asyncio=True, socket_timeout=CLIENT_TIMEOUT_S, socket_connect_timeout=CLIENT_TIMEOUT_S,
                         retry=Retry(NoBackoff(), 0), max_connections=8)
    for one in client if isinstance(client, list) else [client]:
        await prepare_client(one)
    writer = child_writer(cfg)
    store = FencedStore(Path(cfg["store"]), [cfg["lock"]])

    def report(acq: Op) -> None:  # tell the fault plan: the pause may come now
        tmp = Path(cfg["acquired_file"] + ".tmp")
        token = (acq.value or {}).get("token")
        tmp.write_text(json.dumps({"outcome": acq.outcome, "error": acq.error, "token": token}))
        tmp.rename(cfg["acquired_file"])

    sections = Sections(cfg["variant"], make_locks(cfg["variant"], client, [cfg["lock"]], TTL_MS), store,
                        writer.clock, writer.wall_at, writer.write_op)
    trigger, resumed = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, trigger.set)
    loop.add_signal_handler(signal.SIGCONT, resumed.set)  # delivered when the pause ends

    async def until_resumed() -> None:
        """The "work": it lasts until the process was paused and resumed, as a GC or VM stall
        in the middle of a critical section would."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resumed.wait(), WORK_TIMEOUT_S)

    async def work(stop: asyncio.Event) -> None:
        ready(cfg)
        while not stop.is_set():
            if trigger.is_set():
                trigger.clear()
                resumed.clear()
                await sections.run(cfg["lock"], cfg["process"], work=until_resumed, on_acquire=report)
                continue
            waiters = [asyncio.ensure_future(e.wait()) for e in (trigger, stop)]
            await asyncio.wait(waiters, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()

    try:
        await serve_until_stopped(cfg, work)
    finally:
        writer.close()
        store.close()
        await close_clients(client)


# -- declarations ----------------------------------------------------------------------------

CHECKS = ["lock_overlap", "fencing"]
# A critical section is three round trips plus the protected write, and it waits while another client holds
# the lock: its SLO is wider than a single command's.
LOCK_HYPOTHESIS = {**HYPOTHESIS, "p99_max_ms": 100.0}
LOAD = PatternLoad(pattern="lock", scenario=LockScenario, checks=CHECKS, options={"lock": "safe"}, rate_factor=0.5,
                   hypothesis=LOCK_HYPOTHESIS)


def _expiry(name: str, variant: str, checks: list[Any], expect: str, topology: str = "single",
            topologies: tuple[str, ...] = ("sentinel", "cluster")) -> Experiment:
    return Experiment(
        name=name,
        summary=f"lock ({variant}) whose holder process is paused beyond the {TTL_MS / 1000:g} s TTL "
                f"while others take the lock over: {expect}",
        pattern="lock", topology=topology, topologies=topologies,
        scenario=LockScenario, fault=pause_slow_holder,
        fault_label=f"SIGSTOP the lock holder beyond its {TTL_MS / 1000:g} s TTL",
        hypothesis=dict(LOCK_HYPOTHESIS),
        checks=["steady_state", "errors_by_type", "send_lag", *checks],
        options={"lock": variant, "slow_holder": True})


EXPERIMENTS = [
    _expiry("lock-expiry-fenced", "safe", CHECKS,
            "two holders (lock_overlap fails), the stale write is rejected (fencing passes)"),
    _expiry("lock-expiry-unfenced", "nofence", CHECKS,
            "two holders, and storage accepts the stale write (fencing fails)"),
    _expiry("lock-expiry-naive", "naive", ["lock_overlap"],
            "the seed's INCR+EXPIRE lock: two holders, nothing to fence with, release frees others' locks"),
    _expiry("lock-expiry-redlock", "redlock", ["lock_overlap"],
            "Redlock over 5 independent nodes: a majority and a validity time do not stop a paused holder; "
            "two holders, and no token to fence the stale write with (Kleppmann 2016)",
            topology="redlock", topologies=()),
]


if __name__ == "__main__":
    run_loop(holder_main(config_from_argv()))
