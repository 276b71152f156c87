"""Distributed lock under load: clients contend for named locks; each operation is one
critical section: acquire -> a write to the protected resource (a SQLite row per lock,
shared by every process) carrying the fencing token -> release.

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

One job per module:

* :mod:`.store`: the protected resource (``FencedStore``);
* :mod:`.variants`: the lock variants behind one interface (``make_locks``);
* :mod:`.sections`: one critical section, recorded step by step (``Sections``; the
  records the ``lock_overlap`` and ``fencing`` checks read);
* :mod:`.scenario`: the scenario (``LockScenario``) and the lock-expiry fault plan
  (``pause_slow_holder``);
* :mod:`.holder`: the slow holder process of the lock-expiry showcase (option
  ``slow_holder``), a child of ``experiments.children``;
* this module: the declarations the registry reads (``LOAD``, ``EXPERIMENTS``).
"""
from __future__ import annotations

from typing import Any

from experiments.model import HYPOTHESIS, Experiment, PatternLoad
from experiments.scenarios.lock.scenario import LockScenario, pause_slow_holder
from experiments.scenarios.lock.sections import TTL_MS

CHECKS = ["lock_overlap", "fencing"]
# A critical section is three round trips plus the protected write, and it waits while another client holds
# the lock: its SLO is wider than a single command's.
LOCK_HYPOTHESIS = {**HYPOTHESIS, "p99_max_ms": 100.0}
LOAD = PatternLoad(pattern="lock", scenario=LockScenario, checks=CHECKS, options={"lock": "safe"}, rate_factor=0.5,
                   hypothesis=LOCK_HYPOTHESIS)


# Redlock contends by sleep-and-retry: a failed attempt releases on all five nodes and retries after
# uniform(0, 200 ms) (the Redis docs' random delay); a section is ten commands where the others' is two.
# Measured on Docker, 2 cores (`redislab run lock-expiry-redlock`, seeds 1-7): at the profile's rate (quick:
# 200/s) with 64 slots the paused holder's 0.5 s acquire timeouts fill the slots, the contenders' retries
# saturate the generator (p99 send lag 42-63 ms) and the backlog never drains (availability 26% after the
# heal, 2 of 2 runs); at 100/s with 64 slots 1 of 5 runs did the same (49%); at 200/s with 16 slots the idle
# gaps between retries serve fewer sections than offered (p99 0.65-5.7 s after the heal); at 100/s with 16
# slots every run (5 Docker, 2 local) recovers within its recovery phase. The row shows the overlap, not a
# contention collapse of the lab's own load.
REDLOCK_RATE_FACTOR = 0.5
REDLOCK_CONCURRENCY = 16
# A contended acquire waits up to 200 ms with no fault at all (baseline p99 5-230 ms over those runs), so
# Redlock's steady state allows that wait plus a section's commands.
REDLOCK_HYPOTHESIS = {**LOCK_HYPOTHESIS, "p99_max_ms": 300.0}


def _expiry(name: str, variant: str, checks: list[Any], expect: str, topology: str = "single",
            topologies: tuple[str, ...] = ("sentinel", "cluster"), rate_factor: float = 1.0,
            hypothesis: dict[str, Any] | None = None, concurrency: int = 64) -> Experiment:
    return Experiment(
        name=name,
        summary=f"lock ({variant}) whose holder process is paused beyond the {TTL_MS / 1000:g} s TTL "
                f"while others take the lock over: {expect}",
        pattern="lock", topology=topology, topologies=topologies,
        scenario=LockScenario, fault=pause_slow_holder,
        fault_label=f"SIGSTOP the lock holder beyond its {TTL_MS / 1000:g} s TTL",
        hypothesis=dict(hypothesis or LOCK_HYPOTHESIS),
        checks=["steady_state", "errors_by_type", "send_lag", *checks],
        options={"lock": variant, "slow_holder": True}, rate_factor=rate_factor, concurrency=concurrency)


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
            topology="redlock", topologies=(), rate_factor=REDLOCK_RATE_FACTOR,
            hypothesis=REDLOCK_HYPOTHESIS, concurrency=REDLOCK_CONCURRENCY),
]
