"""Fault events: every injection and heal, with a monotonic and a wall-clock timestamp.

Events are plain dicts so an experiment can merge them into its history as is:
``{"type": "fault", "action": "inject"|"heal", "fault": KIND, "target": ..., "params": {...},
"mono": seconds (time.monotonic), "wall": seconds since the epoch}``.
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

    def record(self, action: str, fault: str, target: str, params: dict[str, Any], **extra: Any) -> Event:
        event: Event = {"type": "fault", "action": action, "fault": fault, "target": target, "params": params,
                        "mono": time.monotonic(), "wall": time.time(), **extra}
        self.events.append(event)
        if self.sink is not None:
            self.sink(event)
        return event
