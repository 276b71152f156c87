"""A fault's window opens when the injector begins acting, not when its call returns."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from experiments.history import HistoryWriter, read_history
from faults.events import FAULT_INJECT, EventLog
from faults.injector import FaultInjector
from faults.kinds import Fault

SLOW_S = 0.2  # how long the fake injection takes


class _Topology:
    """Only what the injector asks of a topology."""

    def check_fault(self, kind: str) -> None:
        pass


class _SlowKill(Fault):
    """Bites at once, returns ``SLOW_S`` later (as a ``docker kill`` on a busy daemon does)."""

    kind: ClassVar[str] = "slow_kill"
    summary: ClassVar[str] = "test fault"

    def validate(self, topo: Any) -> None:
        pass

    def inject(self, topo: Any) -> None:
        self.bit_at = time.monotonic()
        time.sleep(SLOW_S)

    def heal(self, topo: Any) -> None:
        time.sleep(SLOW_S)
        self.healed_at = time.monotonic()


def test_the_inject_event_is_stamped_when_the_injection_began(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDISLAB_HOME", str(tmp_path))
    log = EventLog()
    injector = FaultInjector(_Topology(), log)  # type: ignore[arg-type]  # a stand-in with check_fault only
    fault = _SlowKill("redis-1")
    injector.inject(fault)
    injector.heal(fault)
    inject, heal = log.events
    assert inject.t <= fault.bit_at  # operations failing during the slow call are inside the window
    assert inject.fields["took_s"] >= SLOW_S
    assert abs((inject.wall - inject.t) - (heal.wall - heal.t)) < 0.05  # one clock offset
    assert heal.t >= fault.healed_at  # the window closes after the heal completed


def test_fault_events_go_into_each_history_on_its_own_clock_as_the_report_reads_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDISLAB_HOME", str(tmp_path))
    with HistoryWriter(tmp_path / "run.jsonl") as run, \
            HistoryWriter(tmp_path / "other.jsonl", t0=run.t0 - 100) as other:
        log = EventLog(run, caption="SIGKILL the primary")
        log.add_sink(other)
        injector = FaultInjector(_Topology(), log)  # type: ignore[arg-type]  # a stand-in with check_fault only
        fault = _SlowKill("redis-1")
        injector.inject(fault)
        assert '"fault_inject"' in (tmp_path / "run.jsonl").read_text()  # on disk at once: a crash keeps it
        injector.heal(fault)
    (window,) = read_history(tmp_path / "run.jsonl").fault_windows()
    assert (window.fault, window.label) == ("slow_kill:redis-1", "SIGKILL the primary (slow_kill redis-1)")
    assert window.start == pytest.approx(log.events[0].t - run.t0) and window.end is not None
    (shifted,) = read_history(tmp_path / "other.jsonl").fault_windows()
    assert shifted.end is not None
    assert shifted.start == pytest.approx(window.start + 100) and shifted.end == pytest.approx(window.end + 100)
    inject = read_history(tmp_path / "run.jsonl").events_of(FAULT_INJECT)[0]
    assert inject.fields["target"] == "redis-1" and inject.fields["took_s"] >= SLOW_S
