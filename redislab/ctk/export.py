"""A registered lab experiment as a Chaos Toolkit experiment (``redislab export-ctk``).

The shape: a steady-state hypothesis (the topology is healthy and the node the clients are
sent to is primary), a method of ``cycles`` x (inject the experiment's fault, pause for the
fault phase, heal it), and a rollback that heals everything. Chaos Toolkit checks the
hypothesis before the method and again after the last heal: "after the fault, does the
topology recover within the recovery phase?" is the question it answers. There is no
workload: the lab's own claims and measurements come from ``redislab run``.

Only fault plans that name a fault of the catalogue on the current primary can be written
this way (kill / latency / partition of the primary); plans that compute their fault from the
running scenario (a client pid, a memory squeeze, a split with client groups ...) cannot.
"""
from __future__ import annotations

from typing import Any

from experiments import faultplans
from experiments.model import PROFILES, Experiment
from experiments.registry import EXPERIMENTS, get
from labcommon.errors import LabError, UnknownNameError

ACTIONS = "redislab.ctk.actions"
PROBES = "redislab.ctk.probes"
HEALTHY_TIMEOUT_S = 30.0  # s: how long the hypothesis waits for replication / Sentinel / cluster state
MAX_CYCLES = 20

# fault plan -> (fault kind, its parameters), target: the primary at the time of the action
_EXPRESSIBLE: dict[Any, tuple[str, dict[str, Any]]] = {
    faultplans.kill_primary: ("kill", {}),
    faultplans.latency_primary: ("latency", {"latency_ms": faultplans.LATENCY_MS, "direction": "both"}),
    faultplans.partition_primary: ("partition", {}),
}


def exportable(exp: Experiment) -> bool:
    return exp.fault in _EXPRESSIBLE


def _activity(kind: str, name: str, module: str, func: str, arguments: dict[str, Any],
              **extra: Any) -> dict[str, Any]:
    return {"type": kind, "name": name,
            "provider": {"type": "python", "module": module, "func": func, "arguments": arguments}, **extra}


def _hypothesis(timeout_s: float) -> dict[str, Any]:
    return {
        "title": "the topology is healthy and the node the clients are sent to is primary",
        "probes": [
            _activity("probe", "topology-healthy", PROBES, "topology_healthy", {"timeout_s": HEALTHY_TIMEOUT_S},
                      tolerance=True),
            _activity("probe", "primary-present", PROBES, "primary_present", {"timeout_s": timeout_s},
                      tolerance=True),
        ],
    }


def experiment(name: str, profile: str = "quick", cycles: int | None = None) -> dict[str, Any]:
    """The Chaos Toolkit experiment (a JSON-able dict) for lab experiment ``name``, with the
    phase lengths of ``profile`` (pauses in seconds) and ``cycles`` fault cycles (default: the
    profile's). LabError (one line) when its fault plan cannot be expressed."""
    exp = get(name)
    if profile not in PROFILES:
        raise UnknownNameError("profile", profile, list(PROFILES))
    p = PROFILES[profile]
    n = p.cycles if cycles is None else cycles
    if not 1 <= n <= MAX_CYCLES:
        raise LabError(f"--cycles {n} is out of range; accepted: 1..{MAX_CYCLES}")
    if not exportable(exp):
        ok = sorted(e.name for e in EXPERIMENTS.values() if exportable(e))
        raise LabError(f"{exp.name}: its fault plan ({exp.fault_label}) cannot be written as a Chaos Toolkit "
                       "action; exportable: experiments whose fault is kill, latency or partition of the primary",
                       f"e.g. {', '.join(ok[:4])}; all of them: `redislab list`")
    kind, params = _EXPRESSIBLE[exp.fault]
    method: list[dict[str, Any]] = []
    for cycle in range(1, n + 1):
        method.append(_activity("action", f"inject: {exp.fault_label} (cycle {cycle})", ACTIONS, "inject_fault",
                                {"kind": kind, "target": "primary", "params": dict(params)},
                                pauses={"after": p.fault_s}))
        # the last heal is followed by the hypothesis, which waits up to recovery_s for a primary
        method.append(_activity("action", f"heal: {kind} (cycle {cycle})", ACTIONS, "heal", {"kind": kind},
                                **({"pauses": {"after": p.recovery_s}} if cycle < n else {})))
    topologies = (exp.topology, *exp.topologies)
    return {
        "version": "1.0.0",
        "title": f"{exp.name}: {exp.summary}",
        "description": (f"Exported from redis-failure-lab experiment {exp.name} ({profile} profile: "
                        f"{p.fault_s:g} s fault, {p.recovery_s:g} s recovery, {n} cycle(s)). Runs against the "
                        f"topology that is up ({' / '.join(topologies)}; e.g. `redislab up {exp.topology}`). "
                        "No workload runs here: `redislab run` measures what clients see."),
        "tags": ["redislab", exp.pattern, kind, *topologies],
        "extensions": [{"name": "redislab", "experiment": exp.name, "profile": profile, "cycles": n,
                        "fault": {"kind": kind, "target": "primary", "params": params}}],
        "steady-state-hypothesis": _hypothesis(p.recovery_s),
        "method": method,
        "rollbacks": [_activity("action", "heal everything", ACTIONS, "heal_all", {})],
    }
