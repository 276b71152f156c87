"""One `redislab up` / `run` / `demo` at a time: a second one is refused, naming the first.

The holder is recorded in ``<lab home>/busy.json`` as pid + start time + what it runs.
A record whose process is gone (or whose pid now names another process) is stale and
ignored, so a SIGKILLed run never blocks the next one. The same process may nest
holds (``run`` brings a topology up through the same code as ``up``).
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from labcommon.errors import LabError
from topologies.home import StateFile
from topologies.processes import OwnedProcess

_RECORD = "busy.json"
_depth = 0  # nesting of ``hold`` in this process


class LabBusyError(LabError):
    """Another lab command that starts topologies is in progress."""


def holder() -> dict[str, Any] | None:
    """The live holder's record (``pid``, ``what``, ``since``), or None when the lab is free."""
    return _live(StateFile(_RECORD).read() or {})


def _live(data: dict[str, Any]) -> dict[str, Any] | None:
    try:
        proc = OwnedProcess.from_json(data["proc"])
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return data if proc.alive() else None


@contextmanager
def hold(what: str) -> Iterator[None]:
    """Hold the lab while doing ``what`` (e.g. "redislab run cache-primary-kill"); LabBusyError
    naming the holder if another live process holds it."""
    global _depth
    me = OwnedProcess.of(os.getpid())
    assert me is not None
    mine = me.to_json()

    def claim(data: dict[str, Any]) -> dict[str, Any]:
        current = _live(data)
        if current is not None and current["proc"] != mine:
            age = time.time() - float(current.get("since", time.time()))
            raise LabBusyError(f"another lab command is in progress: pid {current['proc'][0]} "
                               f"({current.get('what', '?')}, started {age:.0f} s ago)",
                               f"wait for it to finish, or stop it (Ctrl-C in its terminal, or kill "
                               f"{current['proc'][0]})")
        if current is not None:
            return data  # nested hold in the same process
        return {"proc": mine, "what": what, "since": time.time()}

    StateFile(_RECORD).update(claim)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            StateFile(_RECORD).update(lambda data: {} if data.get("proc") == mine else data)
