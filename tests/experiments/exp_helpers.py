"""Builders for small hand-written histories (times in seconds since t0)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from experiments.history import FAULT_HEAL, FAULT_INJECT, PHASE, Event, History, Op, Outcome

WALL0 = 1_700_000_000.0  # an integer, so wall-clock windows align with t


def op(name: str, args: Any = None, start: float = 0.0, end: float | None = None,
       outcome: Outcome = "ok", value: Any = None, client: int = 0, phase: str | None = None,
       error: str | None = None, intended: float | None = None) -> Op:
    end = start + 0.001 if end is None else end
    if outcome != "ok" and error is None:
        error = "TimeoutError" if outcome == "unknown" else "ConnectionError"
    return Op(client, name, args, start if intended is None else intended, start, end,
              WALL0 + start, outcome, value, error, None, phase)


def ev(kind: str, t: float, **fields: Any) -> Event:
    return Event(t, WALL0 + t, kind, fields)


def fault(start: float, end: float | None, label: str = "kill primary") -> list[Event]:
    out = [ev(FAULT_INJECT, start, fault="f1", label=label)]
    if end is not None:
        out.append(ev(FAULT_HEAL, end, fault="f1", label=label))
    return out


def phase(name: str, start: float, end: float) -> Event:
    return ev(PHASE, start, name=name, start=start, end=end)


def history(*items: Op | Event | Sequence[Op | Event]) -> History:
    ops: list[Op] = []
    evs: list[Event] = []
    for it in items:
        for x in it if isinstance(it, Sequence) else [it]:
            if isinstance(x, Op):
                ops.append(x)
            else:
                evs.append(x)
    return History(ops, evs)


def steady(name: str, t0: float, t1: float, rate: float = 10.0, outcome: Outcome = "ok",
           latency: float = 0.001, phase: str | None = None) -> list[Op]:
    """Ops every 1/rate s in [t0, t1)."""
    n = round((t1 - t0) * rate)
    return [op(name, {"i": i}, t0 + i / rate, t0 + i / rate + latency, outcome, phase=phase)
            for i in range(n)]
