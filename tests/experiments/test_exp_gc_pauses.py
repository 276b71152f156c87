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


def test_no_automatic_full_collection_inside_and_the_thresholds_come_back() -> None:
    """A run's young garbage is still collected (generations 0 and 1); full passes wait for the end
    (one took 32.8 ms inside a failover on the Docker backend)."""
    before = gc.get_threshold()
    kept: list[_Node] = []  # survivors of young collections: what makes a full pass due
    with frozen_heap() as pauses:
        for i in range(200_000):  # on the old thresholds (700, 10, 10): several full passes
            a, b = _Node(), _Node()
            a.other, b.other = b, a
            if i % 2 == 0:
                kept.append(a)
            del a, b
    config = pauses.as_config()
    assert config["collections"]["0"] > 50 and config["collections"]["2"] == 0, config
    assert config["full_collections_deferred"] is True
    assert gc.get_threshold() == before
