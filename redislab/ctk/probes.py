"""Chaos Toolkit probes: a node's role, the failover state, the topology's health, and any
check of ``experiments.checks`` over a recorded history.

Probes that wait (``primary_present``, ``topology_healthy``) poll with a deadline and answer
``False`` when it passes: a steady-state hypothesis compares them with tolerance ``true``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from labcommon.errors import LabError
from labcommon.poll import wait_until
from redislab.ctk.lab import PRIMARY, resolve, topology

__all__ = ["failover_state", "history_check", "node_role", "primary_present", "topology_healthy"]


def node_role(node: str, target_file: str | None = None) -> str:
    """``primary``, ``replica``, ``sentinel`` or ``unknown`` (does not answer), as the node says."""
    return topology(target_file).role(node)


def failover_state(key: str = "lab:probe", target_file: str | None = None) -> dict[str, Any]:
    """Who is primary now: ``{"primary": the node the clients are sent to (Sentinel's view; on the
    Cluster the owner of ``key``'s slot) or None, "roles": {node: role}, "agreed": whether that node
    itself says it is primary}``."""
    topo = topology(target_file)
    roles = {n.name: topo.role(n.name) for n in topo.spec.redis_nodes}
    try:
        primary: str | None = resolve(topo, PRIMARY, key)
    except Exception:  # noqa: BLE001 - Sentinel unreachable, no slot owner: "no primary known" is the answer
        primary = None
    return {"primary": primary, "roles": roles, "agreed": primary is not None and roles.get(primary) == "primary"}


def primary_present(timeout_s: float = 30.0, key: str = "lab:probe", target_file: str | None = None) -> bool:
    """True once the node the clients are sent to says it is primary (polled until ``timeout_s``
    seconds pass; then False)."""
    topo = topology(target_file)
    try:
        wait_until(lambda: topo.role(resolve(topo, PRIMARY, key)) == "primary", timeout_s, "a primary")
    except LabError:
        return False
    return True


def topology_healthy(timeout_s: float = 30.0, target_file: str | None = None) -> bool:
    """True once the topology serves as designed (every node answers; replication and Sentinel
    discovery, or cluster_state ok), polled until ``timeout_s`` seconds pass; then False."""
    try:
        topology(target_file).wait_healthy(timeout_s=timeout_s)
    except LabError:
        return False
    return True


def history_check(history: str, check: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run check ``check`` (see ``experiments.checks.REGISTRY``) with ``params`` over the history file
    ``history`` (a run's ``history.jsonl``, or its run directory). Returns the check's result with
    ``status``: its verdict (``held`` / ``violated`` / ``unknown``, ``measured`` for a measurement),
    so a hypothesis tolerance ``["held"]`` accepts a held claim."""
    from experiments.checks import run_check
    from experiments.history import read_history
    path = Path(history)
    if path.is_dir():
        path = path / "history.jsonl"
    recorded = read_history(path)
    result = run_check(check, recorded, recorded.final_state(), params or {})
    return {"status": result.verdict or "measured", **result.to_json()}
