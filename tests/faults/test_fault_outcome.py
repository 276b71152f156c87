"""What a fault did goes into its heal event (``Fault.outcome``), also when it failed half way:
without Redis (the restart and resharding workers are stood in by objects that report an error)."""
from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from faults import kinds
from faults.events import FAULT_HEAL, EventLog
from faults.injector import FaultInjector


def _topo(*nodes: str) -> Any:
    """A topology with data nodes ``nodes``, every one running (no node to ask about slots)."""
    spec = SimpleNamespace(redis_nodes=[SimpleNamespace(name=n, kind="redis") for n in nodes],
                           node=lambda name: SimpleNamespace(name=name, kind="redis"))
    backend = SimpleNamespace(node_state=lambda name: "running")
    return SimpleNamespace(spec=spec, backend=backend, start=lambda name: None, resume=lambda name: None)


class _Worker:
    """Stands in for maintenance.Restarter / Resharder after a failure half way."""

    def __init__(self, error: BaseException, **done: Any) -> None:
        self.error = error
        self.steps: list[tuple[float, str]] = done.get("steps", [])
        self.moved: dict[int, int] = done.get("moved", {})
        self._stop = threading.Event()

    def join(self, timeout_s: float) -> None:
        self._stop.set()


def test_a_resharding_that_failed_half_way_says_so_in_its_heal_event() -> None:
    fault = kinds.make("reshard", "redis-2", slots="100,101")
    fault._resharder = _Worker(RuntimeError("MIGRATE: IOERR"), moved={100: 40})  # type: ignore[attr-defined]  # the worker slot heal reads
    log = EventLog()
    FaultInjector(_topo(), log).heal(fault)
    heal = log.events[-1]
    assert heal.kind == FAULT_HEAL
    assert heal.fields["outcome"]["moved"] == {"100": 40}
    assert heal.fields["outcome"]["error"] == "RuntimeError: MIGRATE: IOERR"


def test_a_rolling_restart_that_stopped_half_way_says_which_steps_it_did() -> None:
    fault = kinds.make("restart", "all", hook="failover")
    fault.saved["order"] = ["redis-2", "redis-3", "redis-1"]
    fault._restarter = _Worker(TimeoutError("no promotion within 30 s"),  # type: ignore[attr-defined]  # the worker slot
                               steps=[(1.0, "stop redis-2"), (2.0, "started redis-2")])
    log = EventLog()
    FaultInjector(_topo("redis-1", "redis-2", "redis-3"), log).heal(fault)
    outcome = log.events[-1].fields["outcome"]
    assert outcome["steps"] == ["stop redis-2", "started redis-2"]
    assert outcome["error"] == "TimeoutError: no promotion within 30 s"
    assert outcome["order"] == ["redis-2", "redis-3", "redis-1"]


def test_a_fault_with_nothing_to_report_keeps_its_heal_event_as_before() -> None:
    log = EventLog()
    log.record(FAULT_HEAL, "kill", "redis-1", {}, outcome=kinds.make("kill", "redis-1").outcome())
    assert "outcome" not in log.events[-1].fields
