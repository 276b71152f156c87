"""Fault events: every injection and heal, as the history's own event record.

The fault side writes the very records a history holds (:class:`Event`, kinds
``fault_inject`` / ``fault_heal``), each stamped on the clock of the history it goes
into, so nothing converts or relabels them on the way: ``EventLog(writer,
caption=...)`` hands every event to each history it was given (an experiment's
``HistoryWriter``, the pytest plugin's recorders) and keeps its own copy in ``events``
(``t`` = ``time.monotonic()`` seconds). ``Event`` lives here, at the lowest layer that
writes events; ``experiments.history`` reads and writes it.

A fault event's fields: ``fault`` ("KIND:TARGET", the id that pairs an inject with its
heal), ``label`` ("CAPTION (KIND TARGET)", or "KIND TARGET" without a caption),
``target``, ``params`` (the fault's parameters), ``took_s`` (how long the action
took, s) and, on a heal, ``outcome`` when the fault has something to say about what it
did (the steps of a rolling restart, the keys a resharding moved, who ended a stall, an
error it met half way: ``Fault.outcome()``).

An injection's timestamp is when the injector *began* acting (a ``docker kill`` or a
Toxiproxy call takes a while, and the fault may bite before it returns), so every
operation that could meet the fault falls in its window; ``took_s`` says how long the
action took. A heal's timestamp is when the heal *finished*: the window covers it all.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

FAULT_INJECT = "fault_inject"  # the fault began: its window opens
FAULT_HEAL = "fault_heal"  # the heal finished: the window of the inject with the same ``fault`` closes
FAULT_KINDS = (FAULT_INJECT, FAULT_HEAL)


@dataclass(slots=True)
class Event:
    """Something that happened to the system under test (one history record).

    Attributes:
        t: monotonic seconds since the history's t0.
        wall: Unix seconds.
        kind: an event kind (``experiments.history`` lists the ones the report and
            checks understand), or a producer-specific kind.
        fields: JSON-able details.
    """

    t: float
    wall: float
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"type": "event", "t": self.t, "wall": self.wall,
                "kind": self.kind, "fields": self.fields}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Event:
        return cls(t=d["t"], wall=d.get("wall", math.nan), kind=d["kind"],
                   fields=d.get("fields") or {})


class EventSink(Protocol):
    """A history fault events go into, on its own clock."""

    @property
    def t0(self) -> float:
        """The ``time.monotonic()`` value that the history's time 0 stands for."""
        ...

    def write_event(self, event: Event) -> None: ...


class EventLog:
    """Records fault events: in ``events`` (on ``time.monotonic()``) and into every sink,
    each event stamped on that sink's clock. ``caption`` (an experiment's fault label)
    heads every event's label."""

    def __init__(self, *sinks: EventSink, caption: str | None = None) -> None:
        self.events: list[Event] = []
        self.sinks: list[EventSink] = list(sinks)
        self.caption = caption

    def add_sink(self, sink: EventSink) -> None:
        """Write the events recorded from now on into ``sink`` too."""
        self.sinks.append(sink)

    def record(self, kind: str, fault: str, target: str, params: dict[str, Any],
               at_mono: float | None = None, outcome: dict[str, Any] | None = None) -> Event:
        """Record a ``fault_inject`` or ``fault_heal`` of fault ``fault`` (its kind) on ``target``,
        timestamped now, or at ``at_mono`` (an earlier ``time.monotonic()``). ``outcome``: what the
        fault did (``Fault.outcome()``), kept in the event when there is something to say."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault event kind {kind!r}; accepted: {', '.join(FAULT_KINDS)}")
        now_mono, now_wall = time.monotonic(), time.time()
        mono = now_mono if at_mono is None else at_mono
        wall = now_wall - (now_mono - mono)
        name = f"{fault} {target}"
        fields = {"fault": f"{fault}:{target}", "label": f"{self.caption} ({name})" if self.caption else name,
                  "target": target, "params": params, "took_s": round(now_mono - mono, 6)}
        if outcome:
            fields["outcome"] = outcome
        event = Event(mono, wall, kind, fields)
        self.events.append(event)
        for sink in self.sinks:
            sink.write_event(Event(mono - sink.t0, wall, kind, dict(fields)))
        return event
