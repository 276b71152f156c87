"""The experiments, by name: each scenario module's named experiments, plus the
matrix (every pattern x kill / latency / partition; the topology is chosen with
``--topology``). Adding a pattern = a scenario module with ``LOAD`` and
``EXPERIMENTS`` + one line in ``SCENARIO_MODULES``."""
from __future__ import annotations

from types import ModuleType

from experiments.faultplans import FAULT_PLANS
from experiments.model import GENERIC_CHECKS, Experiment, PatternLoad
from experiments.scenarios import (
    bandwidth,
    cache,
    counter,
    emptyprimary,
    leaderboard,
    lock,
    maintenance,
    persistence,
    proximity,
    queue,
    quorum,
    rate_limiter,
    replicalag,
    reshard,
    splitbrain,
    stalled,
)
from labcommon.errors import UnknownNameError

SCENARIO_MODULES: tuple[ModuleType, ...] = (cache, queue, rate_limiter, proximity, counter, lock, leaderboard)
SHOWCASE_MODULES: tuple[ModuleType, ...] = (  # named experiments only, no matrix row
    splitbrain, persistence, emptyprimary, maintenance, stalled, bandwidth, quorum, replicalag, reshard)

LOADS: dict[str, PatternLoad] = {m.LOAD.pattern: m.LOAD for m in SCENARIO_MODULES}


def matrix_experiment(load: PatternLoad, fault: str) -> Experiment:
    """The catalogue cell: ``load`` through ``fault`` (kill / latency / partition of the primary)."""
    plan, label = FAULT_PLANS[fault]
    return Experiment(
        name=f"{load.pattern}-{fault}",
        summary=f"{load.pattern} while we {label}",
        pattern=load.pattern, topology=load.topologies[0], topologies=load.topologies[1:],
        scenario=load.scenario, fault=plan, fault_label=label, hypothesis=dict(load.hypothesis),
        checks=[*GENERIC_CHECKS, *load.checks], options=dict(load.options), concurrency=load.concurrency,
        rate_factor=load.rate_factor)


EXPERIMENTS: dict[str, Experiment] = {e.name: e for m in (*SCENARIO_MODULES, *SHOWCASE_MODULES)
                                      for e in m.EXPERIMENTS}
EXPERIMENTS.update({e.name: e for e in (matrix_experiment(load, f) for load in LOADS.values() for f in FAULT_PLANS)})


def get(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise UnknownNameError("experiment", name, list(EXPERIMENTS), "see `redislab list`")
    return EXPERIMENTS[name]
