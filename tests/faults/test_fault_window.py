"""A fault's window opens when the injector begins acting, not when its call returns."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from faults.events import EventLog
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
    assert inject["mono"] <= fault.bit_at  # operations failing during the slow call are inside the window
    assert inject["took_s"] >= SLOW_S
    assert abs((inject["wall"] - inject["mono"]) - (heal["wall"] - heal["mono"])) < 0.05  # one clock offset
    assert heal["mono"] >= fault.healed_at  # the window closes after the heal completed
