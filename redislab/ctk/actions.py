"""Chaos Toolkit actions: inject any fault of ``redislab faults``, heal one, heal everything.

Injected through ``faults.injector.FaultInjector``: each active fault is recorded in the lab's
home before it is injected, so ``heal`` / ``heal_all`` (here, in a rollback, or ``redislab heal``
from a shell) undo it from any process.
"""
from __future__ import annotations

from typing import Any

from faults import kinds
from faults.injector import FaultInjector, active_faults
from faults.injector import heal_all as _heal_all
from redislab.ctk.lab import PRIMARY, resolve, topology

__all__ = ["heal", "heal_all", "inject_fault"]


def inject_fault(kind: str, target: str = PRIMARY, params: dict[str, Any] | None = None,
                 key: str = "lab:probe", target_file: str | None = None) -> dict[str, Any]:
    """Inject fault ``kind`` (see ``redislab faults``) on ``target`` (a node, a link, ``pid:N``,
    partition sides, or ``primary``: the node serving writes when the action runs; on the Cluster
    the primary owning ``key``'s slot) with ``params`` (units as listed). Returns what was
    injected: ``{"kind", "target", "params"}``. The fault stays active until healed."""
    topo = topology(target_file)
    fault = kinds.make(kind, resolve(topo, target, key), **(params or {}))
    FaultInjector(topo).inject(fault)
    return {"kind": fault.kind, "target": fault.target, "params": fault.values}


def heal(kind: str | None = None, target: str | None = None, target_file: str | None = None) -> list[str]:
    """Heal the active faults of ``kind`` on ``target`` (either may be omitted: any); returns them
    as ``kind:target``. ``target`` is the resolved name (``inject_fault``'s result), not ``primary``."""
    topo = topology(target_file)
    injector = FaultInjector(topo)
    healed = []
    for record in active_faults():
        if (kind is None or record["kind"] == kind) and (target is None or record["target"] == target):
            injector.heal(kinds.from_record(record))
            healed.append(f"{record['kind']}:{record['target']}")
    return healed


def heal_all(target_file: str | None = None) -> list[str]:
    """Undo everything (``redislab heal``): active faults, toxics, partitions, stopped or paused
    nodes. Returns what it did."""
    return _heal_all(topology(target_file))
