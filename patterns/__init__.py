"""The Redis patterns the lab puts under stress, usable on their own.

Each works with any ``redis.asyncio`` client (plain ``Redis``,
``Sentinel.master_for``, ``RedisCluster``), takes a ``RetryPolicy`` and counts
what it does (``.counters``). See patterns/README.md for each pattern's
failure behaviour.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: name -> module. Adding a pattern: one new module plus one line here.
REGISTRY: dict[str, str] = {
    "cache_aside": "patterns.cache_aside",
    "lock": "patterns.lock",
    "redlock": "patterns.redlock",
    "leaderboard": "patterns.leaderboard",
    "rate_limiter": "patterns.rate_limiter",
    "proximity": "patterns.proximity",
    "work_queue": "patterns.work_queue",
}


def load(name: str) -> ModuleType:
    """The module of pattern ``name``; unknown names raise with the known ones."""
    try:
        return importlib.import_module(REGISTRY[name])
    except KeyError:
        raise KeyError(f"unknown pattern {name!r}; known: {sorted(REGISTRY)}") from None
