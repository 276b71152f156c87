"""The heap alive when the schedule starts is kept out of collections, and collections during it are timed."""
from __future__ import annotations

import gc
import weakref

from experiments.gc_pauses import frozen_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _collected(obj: object) -> bool:
    """Whether a collection of some generation walks ``obj``."""
    return any(o is obj for gen in (0, 1, 2) for o in gc.get_objects(gen))


def test_the_heap_alive_at_the_start_is_frozen_and_handed_back() -> None:
    survivor = _Node()
    with frozen_heap() as pauses:
        assert pauses.frozen > 0 and gc.get_freeze_count() > 0
        assert not _collected(survivor)  # out of every generation's walk
    assert gc.get_freeze_count() == 0
    assert _collected(survivor)


def test_collections_inside_are_counted_and_new_cycles_still_collected() -> None:
    with frozen_heap() as pauses:
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None  # a cycle made during the schedule is still garbage-collected
    config = pauses.as_config()
    assert config["collections"]["2"] >= 1
    assert config["max_pause_ms"]["2"] > 0
    assert pauses.on_gc not in gc.callbacks
