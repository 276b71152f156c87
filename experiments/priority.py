"""The load generator's CPU priority: ahead of the system under test on a shared machine.

On one machine the generator shares its cores with the Redis processes, Sentinels,
Toxiproxy and (Docker backend) dockerd/containerd, and a failover is exactly when
they all wake up (replica full sync: a fork and an RDB transfer; container teardown).
Measured on 2 cores, the generator then waited for a CPU 12-22 ms at p99 and the run's
figures described the generator, not Redis (``send_lag`` unknown). In production the
clients run on other machines; here the schedule's event-loop thread runs at
``GENERATOR_NICE`` for the duration of the schedule, so it gets a core first, and
*only* that thread: it is put under ``SCHED_RESET_ON_FORK`` (sched(7)) first, so every
thread and process it starts (a fault's thread, a Redis restarted by a fault, the
SQLite pool) starts at nice 0 like the rest of the system under test.

Raising needs CAP_SYS_NICE (root, or an RLIMIT_NICE allowance); without it the thread
keeps its nice value and the run's config says so (its ``send_lag`` check still
judges whether the generator kept its schedule). ``REDISLAB_GENERATOR_NICE=0`` turns
the raise off.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
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
                "scope": "the schedule's event-loop thread only; threads and processes it starts run at nice 0 "
                         "(SCHED_RESET_ON_FORK)"}

    def text(self) -> str:
        """One sentence for the run's report."""
        if self.nice == self.requested and self.nice < 0:
            return (f"The load generator's schedule thread ran at nice {self.nice} (ahead of Redis on this machine; "
                    "what it starts runs at nice 0).")
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


@contextlib.contextmanager
def schedule_priority(nice: int | None = None) -> Iterator[Priority]:
    """Run the calling thread at ``nice`` (default :func:`requested_nice`) inside the block, with
    ``SCHED_RESET_ON_FORK`` so nothing it starts inherits the raise; restored on exit."""
    want = requested_nice() if nice is None else nice
    before = os.getpriority(os.PRIO_PROCESS, 0)  # Linux: the calling thread's nice value
    if want >= before:
        yield Priority(want, before, "" if want == before else "already lower than asked for")
        return
    try:
        # first the flag (threads and processes started from now on begin at nice 0), then the raise
        os.sched_setscheduler(0, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, 0, want)
    except (PermissionError, AttributeError, OSError) as exc:
        reason = ("not permitted: needs CAP_SYS_NICE (root) or an RLIMIT_NICE allowance"
                  if isinstance(exc, PermissionError) else f"not supported here ({exc})")
        yield Priority(want, os.getpriority(os.PRIO_PROCESS, 0), reason)
        return
    try:
        yield Priority(want, want, "")
    finally:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, before)
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
