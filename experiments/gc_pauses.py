"""The garbage collector during the schedule: the heap that exists when the load starts is
frozen out of collections, and every collection that still runs is timed.

CPython's cyclic collector stops the process while it walks a generation; a full
(generation 2) pass walks every tracked object. A catalogue runs its rows in one
process, and what earlier rows left behind (their histories read back for reports,
matplotlib's figures, results) made later rows' full passes long enough to stall the
generator: a quick Docker catalogue's lock rows, 40 rows in, showed 100-150 ms gaps in
a quiet recovery phase, every few seconds (p99 send lag 30-45 ms), while the same
experiment alone kept 3-7 ms. ``gc.freeze()`` moves every object alive at the start into
a permanent generation that collections skip (the CPython documentation's advice for
exactly this); the objects the run itself creates are still collected, and
``gc.unfreeze()`` hands the frozen ones back once the schedule ends.

Full passes are also deferred to the schedule's end (``gc.set_threshold``'s third
threshold raised to ``DEFERRED_FULL``; the first two, which collect the young
generations where a run's cyclic garbage dies, unchanged). Even with the heap frozen,
the Docker backend's ``lock-partition`` row made one full pass of 32.8 ms in its 21 s,
inside the failover's 100-ms stall of the generator. What survives two young
collections is kept until the end, where one full collection runs (untimed: the
schedule is over).
"""
from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DEFERRED_FULL = 1_000_000  # young-generation collections before a full one: not within any schedule


@dataclass
class GcPauses:
    """Collections during the schedule, per generation, and the longest, in ms."""

    frozen: int = 0  # objects moved out of the collector's reach at the start
    counts: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 0, 2: 0})
    max_ms: dict[int, float] = field(default_factory=lambda: {0: 0.0, 1: 0.0, 2: 0.0})
    _started: float | None = None

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """``gc.callbacks`` hook: time each collection."""
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            gen = int(info.get("generation", 2))
            ms = (time.perf_counter() - self._started) * 1000
            self._started = None
            self.counts[gen] = self.counts.get(gen, 0) + 1
            self.max_ms[gen] = max(self.max_ms.get(gen, 0.0), ms)

    def as_config(self) -> dict[str, Any]:
        return {"frozen_objects": self.frozen, "full_collections_deferred": True,  # always, since this version
                "collections": {str(g): n for g, n in self.counts.items()},
                "max_pause_ms": {str(g): round(ms, 2) for g, ms in self.max_ms.items()}}


@contextlib.contextmanager
def frozen_heap() -> Iterator[GcPauses]:
    """Freeze the heap alive now out of collections for the block, defer full collections to its end,
    and time every collection in it."""
    pauses = GcPauses()
    gc.collect()  # what is garbage already goes now, before the clock matters
    gc.freeze()
    pauses.frozen = gc.get_freeze_count()
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], DEFERRED_FULL)
    gc.callbacks.append(pauses.on_gc)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(pauses.on_gc)
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        gc.collect()  # the deferred full pass, after the schedule
