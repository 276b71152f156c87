"""Injecting and healing faults: recorded while active, healed in ``finally``, healable from anywhere.

    injector = FaultInjector(topo, EventLog(history_writer))
    with injector.active(kinds.make("latency", "redis-1", latency_ms=200)):
        ...                                   # healed on exit, exception or Ctrl-C

Each active fault is written to ``<lab home>/faults.json`` *before* it is injected,
so ``heal_all`` (``redislab heal``) can undo it even after the injecting process
was killed.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faults import heal, kinds, records
from faults.events import FAULT_HEAL, FAULT_INJECT, EventLog
from topologies.api import Topology


class FaultInjector:
    """Injects and heals faults on one topology, recording an event for each."""

    def __init__(self, topo: Topology, events: EventLog | None = None) -> None:
        self.topo = topo
        self.events = events or EventLog()

    def inject(self, fault: kinds.Fault) -> None:
        self.topo.check_fault(fault.kind)
        fault.validate(self.topo)
        records.save([*records.active(), fault.record()])
        began = time.monotonic()  # the fault's window opens here: it may bite before inject returns
        try:
            fault.inject(self.topo)
        except BaseException:
            self.heal(fault, record_event=False)
            raise
        records.save([r for r in records.active() if not _same(r, fault)] + [fault.record()])  # with saved state
        self.events.record(FAULT_INJECT, fault.kind, fault.target, fault.values, at_mono=began)

    def heal(self, fault: kinds.Fault, record_event: bool = True) -> None:
        try:
            fault.heal(self.topo)
        finally:
            records.save([r for r in records.active() if not _same(r, fault)])
        if record_event:
            self.events.record(FAULT_HEAL, fault.kind, fault.target, fault.values, outcome=fault.outcome())

    @contextmanager
    def active(self, fault: kinds.Fault) -> Iterator[kinds.Fault]:
        """Inject on entry, heal on exit: also on exceptions, Ctrl-C and SIGTERM (when the
        process turns SIGTERM into an exception, as the CLI does)."""
        self.inject(fault)
        try:
            yield fault
        finally:
            self.heal(fault)

    def hold(self, fault: kinds.Fault, duration_s: float) -> None:
        """Inject, keep for ``duration_s`` seconds, heal."""
        with self.active(fault):
            deadline = time.monotonic() + duration_s
            while time.monotonic() < deadline:
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def _same(record: dict[str, Any], fault: kinds.Fault) -> bool:
    return record["kind"] == fault.kind and record["target"] == fault.target


def active_faults() -> list[dict[str, Any]]:
    return records.active()


def heal_all(topo: Topology | None, events: EventLog | None = None) -> list[str]:
    """Restore a clean state from anything (see ``faults.heal``); returns what it did."""
    if topo is not None and topo.is_target:  # never the lab-wide sweep on a deployment the lab did not start
        return topo.heal_all()  # type: ignore[attr-defined]  # topo.is_target: a TargetTopology
    return heal.heal_all(topo, events)
