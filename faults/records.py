"""The active-fault records, ``<lab home>/faults.json``: a fault is written here *before* it is
injected and removed after its heal, so ``redislab heal`` (``faults.heal``) can undo it even after
the injecting process was killed."""
from __future__ import annotations

from typing import Any

from topologies.home import StateFile

_ACTIVE = "faults.json"


def active() -> list[dict[str, Any]]:
    """Every recorded fault (``Fault.record()`` dicts), oldest first."""
    return (StateFile(_ACTIVE).read() or {}).get("active", [])


def save(records: list[dict[str, Any]]) -> None:
    """Replace the records (none: the file is removed)."""
    if records:
        StateFile(_ACTIVE).write({"active": records})
    else:
        StateFile(_ACTIVE).clear()


def clear() -> None:
    """Forget every record (after a heal that undid them by other means, e.g. a target's)."""
    save([])
