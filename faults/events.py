"""Fault events: every injection and heal, with a monotonic and a wall-clock timestamp.

Events are plain dicts so an experiment can merge them into its history as is:
``{"type": "fault", "action": "inject"|"heal", "fault": KIND, "target": ..., "params": {...},
"mono": seconds (time.monotonic), "wall": seconds since the epoch, "took_s": seconds}``.

An injection's timestamp is when the injector *began* acting (a ``docker kill`` or a
Toxiproxy call takes a while, and the fault may bite before it returns), so every
operation that could meet the fault falls in its window; ``took_s`` says how long the
action took. A heal's timestamp is when the heal *finished*: the window covers it all.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]


class EventLog:
    """Collects events; ``sink`` (e.g. an experiment's history writer) receives each one too."""

    def __init__(self, sink: Callable[[Event], None] | None = None) -> None:
        self.events: list[Event] = []
        self.sink = sink

    def record(self, action: str, fault: str, target: str, params: dict[str, Any], at_mono: float | None = None,
               **extra: Any) -> Event:
        """Record an event timestamped now, or at ``at_mono`` (an earlier ``time.monotonic()``)."""
        now_mono, now_wall = time.monotonic(), time.time()
        mono = now_mono if at_mono is None else at_mono
        event: Event = {"type": "fault", "action": action, "fault": fault, "target": target, "params": params,
                        "mono": mono, "wall": now_wall - (now_mono - mono), "took_s": round(now_mono - mono, 6),
                        **extra}
        self.events.append(event)
        if self.sink is not None:
            self.sink(event)
        return event
