"""One critical section (acquire -> a write to the protected resource carrying the fencing
token -> release), recorded step by step.

Every step is an ``Op`` of kind ``step`` (they feed the lock checks, never the headline
figures): ``acquire`` ``{"lock", "ttl_s"}``: ok ``{"token": n, "holder": ...}`` (naive: no
token), the lock still busy at the acquire deadline -> fail ``LockTimeout``;
``fenced_write`` ``{"lock", "token", "holder"}``: ok ``{"accepted": bool}`` (naive and
redlock: op ``write`` ``{"lock"}``, no token to fence with); ``release`` ``{"lock"}``: ok
``{"released": bool}`` (False: it had expired). The section as a whole is one
``lock_section`` result, whose outcome is the first step that was not ok.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from experiments.history import FAIL, OK, STEP, UNKNOWN, Op, Outcome
from experiments.scenarios.lock.store import FencedStore
from experiments.scenarios.lock.variants import UNFENCED, Locks
from experiments.workload import OpResult, attempt, classify
from patterns.lock import LockTimeout

TTL_MS = 2000  # lock TTL; the naive lock's EXPIRE takes whole seconds, so keep it a multiple of 1000
ACQUIRE_TIMEOUT_S = 0.5  # a blocking acquire gives up (LockTimeout) after this
CLIENT_TIMEOUT_S = 0.5  # socket timeout of every client that runs sections


def classify_lock_error(exc: BaseException) -> tuple[Outcome, str]:
    """``LockTimeout`` (still busy at the deadline): the caller did not get the lock: fail (its
    name alone would read as a timeout; a grant that a last attempt cut by the deadline may
    have taken is never used and is released by the pattern in the background). Everything
    else as ``classify`` judges it (a ``LockUnavailable`` by its Redis cause: a timeout may
    have acquired)."""
    if isinstance(exc, LockTimeout):
        return FAIL, "LockTimeout"
    return classify(exc)


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
