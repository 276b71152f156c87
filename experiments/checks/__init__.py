"""Checks: pure functions ``check(history, final_state, params) -> CheckResult``.

A check is a **claim** (held / violated / unknown) or a **measurement** (no
verdict); see ``base``. Adding a check: write the function in a family module
and add one line to :data:`REGISTRY`. :func:`get_check` raises
:class:`UnknownCheckError` (listing the known names) for an unknown name;
:func:`run_check` turns a crash into an ``unknown`` verdict; :func:`worst`
combines the claims' verdicts (violated > unknown > held).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..history import History
from . import (
    availability,
    cache,
    failover,
    fault_outcome,
    leaderboard,
    lock,
    outages,
    proximity,
    queue,
    rate_limiter,
    recovery,
    writes,
)
from .base import (
    HELD,
    UNKNOWN,
    VIOLATED,
    CheckFn,
    CheckParamError,
    CheckResult,
    Verdict,
    worst,
)
from .base import run_check as _run_fn

REGISTRY: dict[str, CheckFn] = {
    "steady_state": availability.steady_state,
    "during_fault": availability.during_fault,
    "errors_by_type": availability.errors_by_type,
    "send_lag": availability.send_lag,
    "time_to_detect": recovery.time_to_detect,
    "time_to_recover": recovery.time_to_recover,
    "failover_time": failover.failover_time,
    "lost_writes": writes.lost_writes,
    "counter": writes.counter,
    "leaderboard_increments": leaderboard.leaderboard_increments,
    "cache_stale_reads": cache.cache_stale_reads,
    "cache_read_your_writes": cache.cache_read_your_writes,
    "cache_fallback": cache.cache_fallback,
    "lock_overlap": lock.lock_overlap,
    "fencing": lock.fencing,
    "rate_limit": rate_limiter.rate_limit,
    "false_rejections": rate_limiter.false_rejections,
    "queue_delivery": queue.queue_delivery,
    "proximity_results": proximity.proximity_results,
    "expectation": outages.expectation,
    "persistence_loss": outages.persistence_loss,
    "dataset_after_restart": outages.dataset_after_restart,
    "failover_expected": outages.failover_expected,
    "replica_staleness": outages.replica_staleness,
    "cache_vs_database": outages.cache_vs_database,
    "fault_outcome": fault_outcome.fault_outcome,
}


class UnknownCheckError(KeyError):
    """No check of that name; the message lists the known ones."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name
        self.known = sorted(REGISTRY)

    def __str__(self) -> str:
        return f"unknown check {self.name!r}; known checks: {', '.join(self.known)}"


def get_check(name: str) -> CheckFn:
    """The check called ``name`` (raises UnknownCheckError)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownCheckError(name) from None


def run_check(name: str, history: History, final_state: Mapping[str, Any] | None = None,
              params: Mapping[str, Any] | None = None) -> CheckResult:
    """Run the registered check ``name``; a crash gives verdict unknown.
    An unknown name raises (a typo is a configuration error, not a result)."""
    return _run_fn(name, get_check(name), history, final_state, params)


def run_checks(specs: Iterable[str | Mapping[str, Any]], history: History,
               final_state: Mapping[str, Any] | None = None) -> list[CheckResult]:
    """Run checks given as names or ``{"name": ..., "params": {...}}``.
    All names are validated before any check runs."""
    norm = [(s, {}) if isinstance(s, str) else (s["name"], s.get("params") or {}) for s in specs]
    for name, _ in norm:
        get_check(name)
    state = history.final_state() if final_state is None else final_state
    return [run_check(n, history, state, p) for n, p in norm]


__all__ = [
    "HELD",
    "REGISTRY",
    "UNKNOWN",
    "VIOLATED",
    "CheckFn",
    "CheckParamError",
    "CheckResult",
    "UnknownCheckError",
    "Verdict",
    "get_check",
    "run_check",
    "run_checks",
    "worst",
]
