"""The load generator's CPU priority: ahead of the system under test on a shared machine.

On one machine the generator shares its cores with the Redis processes, Sentinels,
Toxiproxy and (Docker backend) dockerd/containerd, and a failover is exactly when
they all wake up (replica full sync: a fork and an RDB transfer; container teardown).
Measured on 2 cores, the generator then waited for a CPU 12-22 ms at p99 and the run's
figures described the generator, not Redis (``send_lag`` unknown). In production the
clients run on other machines; here the generator process's threads run at
``GENERATOR_NICE`` for the duration of the schedule, so they get a core first: the
event-loop thread (:func:`schedule_priority`), and the worker threads, the default
executor's (SQLite writes of the lock and cache scenarios) and the fault plan's, through
:func:`thread_pool`. All of them, not the loop alone: the GIL makes a process's Python
threads one scheduling unit, and a worker thread preempted while it holds the GIL stalls
the loop however high the loop's own priority (measured: ``lock-kill``, whose every
critical section writes SQLite from a worker thread, kept a 20 ms p99 send lag with the
loop alone raised). Each raised thread is put under ``SCHED_RESET_ON_FORK`` (sched(7))
first, so every process it starts (a Redis restarted by a fault, a child process) starts
at nice 0 like the rest of the system under test.

Raising needs CAP_SYS_NICE (root, or an RLIMIT_NICE allowance); without it the thread
keeps its nice value and the run's config says so (its ``send_lag`` check still
judges whether the generator kept its schedule). ``REDISLAB_GENERATOR_NICE=0`` turns
the raise off.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from labcommon.errors import LabError

GENERATOR_NICE = -10  # nice value of the schedule's thread (CFS weight 9548 against 1024 at nice 0)
NICE_ENV = "REDISLAB_GENERATOR_NICE"
NICE_RANGE = range(-20, 1)  # the raise can only go up in priority (0: off)


@dataclass(frozen=True)
class Priority:
    """What the schedule's thread ran at."""

    requested: int  # nice value asked for
    nice: int  # nice value it ran at
    reason: str  # why it differs from the request ("" when it does not)

    def as_config(self) -> dict[str, object]:
        return {"requested_nice": self.requested, "nice": self.nice, "reason": self.reason,
                "scope": "the generator process's event-loop and worker threads; processes they start run at "
                         "nice 0 (SCHED_RESET_ON_FORK)"}

    @property
    def raised(self) -> bool:
        return self.nice == self.requested and self.nice < 0

    def text(self) -> str:
        """One sentence for the run's report."""
        if self.raised:
            return (f"The load generator's threads ran at nice {self.nice} during the schedule (ahead of Redis on "
                    "this machine; the processes they start run at nice 0).")
        return f"The load generator's schedule thread ran at nice {self.nice}" + (
            f" ({self.reason})." if self.reason else ".")


def requested_nice() -> int:
    """``REDISLAB_GENERATOR_NICE`` if set (one clear line when it is not a nice value), else the default."""
    raw = os.environ.get(NICE_ENV)
    if raw is None or raw.strip() == "":
        return GENERATOR_NICE
    try:
        value = int(raw)
    except ValueError:
        value = 1
    if value not in NICE_RANGE:
        raise LabError(f"{NICE_ENV}={raw!r} is not accepted; accepted: an integer from -20 to 0",
                       f"e.g. {NICE_ENV}=0 to leave the generator at the normal priority")
    return value


def _raise_this_thread(nice: int) -> None:
    """The calling thread at ``nice`` with ``SCHED_RESET_ON_FORK`` (what it starts begins at nice 0)."""
    os.sched_setscheduler(0, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))
    os.setpriority(os.PRIO_PROCESS, 0, nice)


def _worker_initializer(nice: int) -> None:
    """A pool thread's first act: take the generator's priority when the process may (else stay)."""
    with contextlib.suppress(OSError, AttributeError):
        if nice < os.getpriority(os.PRIO_PROCESS, 0):
            _raise_this_thread(nice)


def thread_pool(nice: int, max_workers: int | None = None, name: str = "lab") -> ThreadPoolExecutor:
    """A thread pool whose threads run at ``nice`` where the process may raise them (see the
    module's docstring), else at the nice value they start with."""
    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name,
                              initializer=_worker_initializer, initargs=(nice,))


def raise_default_executor(priority: Priority) -> None:
    """Once the schedule's thread is raised: the running loop's default executor (``to_thread``)
    becomes a pool at the same nice value; the previous pool finishes what it runs and goes."""
    if not priority.raised:
        return
    loop = asyncio.get_running_loop()
    previous = getattr(loop, "_default_executor", None)
    loop.set_default_executor(thread_pool(priority.nice))
    if previous is not None:
        previous.shutdown(wait=False)


@contextlib.contextmanager
def schedule_priority(nice: int | None = None) -> Iterator[Priority]:
    """Run the calling thread at ``nice`` (default :func:`requested_nice`) inside the block, with
    ``SCHED_RESET_ON_FORK`` so nothing it starts inherits the raise, and, when a loop runs in it, the
    loop's default executor at the same value (:func:`raise_default_executor`); restored on exit."""
    want = requested_nice() if nice is None else nice
    before = os.getpriority(os.PRIO_PROCESS, 0)  # Linux: the calling thread's nice value
    if want >= before:
        yield Priority(want, before, "" if want == before else "already lower than asked for")
        return
    try:
        _raise_this_thread(want)
    except (PermissionError, AttributeError, OSError) as exc:
        reason = ("not permitted: needs CAP_SYS_NICE (root) or an RLIMIT_NICE allowance"
                  if isinstance(exc, PermissionError) else f"not supported here ({exc})")
        yield Priority(want, os.getpriority(os.PRIO_PROCESS, 0), reason)
        return
    raised = Priority(want, want, "")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no loop in this thread: no default executor to raise
    else:
        raise_default_executor(raised)
    try:
        yield raised
    finally:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, before)
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
