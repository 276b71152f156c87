"""What an experiment declares, and the context a scenario runs in.

An experiment = a pattern scenario (setup / one operation / final state) + a
topology + a workload (rate, clients, phases) + a fault plan (what to inject at
the start of the ``fault`` phase, healed at the start of ``recovery``) + a
steady-state hypothesis + the checks to run over the history.
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from experiments.children import Children
from experiments.history import HistoryWriter, PhaseWindow
from experiments.workload import OpResult, Share
from faults.kinds import Fault
from patterns.common import RetryPolicy, prepare_client
from topologies.api import Topology
from topologies.clients import ClientPolicy


@dataclass(frozen=True)
class Profile:
    """Phase lengths (s), fault cycles and load. ``quick`` is for CI and a hurried user.

    The schedule: ``warmup`` (load runs, excluded from every figure: connection
    set-up), ``baseline``, then ``cycles`` times (``fault`` -> ``recovery``): every
    figure is reported as its median and range over the cycles."""

    warmup_s: float
    baseline_s: float
    fault_s: float
    recovery_s: float
    cycles: int
    rate: float  # ops/s, all clients together
    clients: int

    @property
    def total_s(self) -> float:
        return self.warmup_s + self.baseline_s + self.cycles * (self.fault_s + self.recovery_s)

    def phases(self) -> tuple[tuple[str, float], ...]:
        """``(name, seconds)`` in order, as the workload schedules them."""
        return (("warmup", self.warmup_s), ("baseline", self.baseline_s),
                *(p for _ in range(self.cycles) for p in (("fault", self.fault_s), ("recovery", self.recovery_s))))


PROFILES = {
    "quick": Profile(warmup_s=1, baseline_s=2, fault_s=4, recovery_s=5, cycles=2, rate=200, clients=8),
    "full": Profile(warmup_s=2, baseline_s=8, fault_s=10, recovery_s=12, cycles=3, rate=500, clients=16),
}


@dataclass
class RunContext:
    """Everything a scenario may use during one run."""

    topo: Topology
    run_dir: Path
    run_id: str
    writer: HistoryWriter
    seed: int
    options: dict[str, Any]
    children: Children
    rng: random.Random = field(default_factory=random.Random)
    phases: list[PhaseWindow] = field(default_factory=list)  # announced so far, in order
    share: Share = Share()  # the part of the schedule this process runs (several generator processes)
    worker_states: list[dict[str, Any]] = field(default_factory=list)  # each generator's worker_finish(), for finish()
    client_policy: ClientPolicy | None = None  # the scenario's app client's, recorded in config.json

    def phase_at(self, t: float) -> str | None:
        """The workload phase run time ``t`` (s since t0) fell in."""
        name = None
        for p in self.phases:
            if p.start <= t:
                name = p.name
        return name


GENERIC_CHECKS = ["steady_state", "errors_by_type", "send_lag", "time_to_detect", "time_to_recover",
                  "failover_time"]  # what every fault experiment is judged on / measures, besides its pattern's checks
# The SLO of the steady-state hypothesis; ``during``: the SLO a design promises while the fault lasts (a fallback,
# a breaker), None when it promises nothing then.
HYPOTHESIS: dict[str, Any] = {"availability_min": 0.99, "p99_max_ms": 50.0, "during": None}
SERVED_THROUGH = {**HYPOTHESIS, "during": {"availability_min": 0.99, "p99_max_ms": 50.0}}
POOL_SIZE = 128  # connections a scenario's client may open (above any experiment's concurrency)


async def warm_up(client: Any, connections: int) -> None:
    """Open ``connections`` pooled connections now, so the run does not start with a
    connection storm (every concurrent first request opening its own connection)."""
    await asyncio.gather(*(client.ping() for _ in range(connections)))


def app_policy(timeout_s: float = 0.25, connect_timeout_s: float | None = None) -> ClientPolicy:
    """A scenario's client policy: ``timeout_s`` socket timeout (s), ``connect_timeout_s``
    (default: the same), no redis-py retry (the pattern's own policy is the one that counts),
    a pool above any concurrency."""
    return ClientPolicy(socket_timeout_s=timeout_s, connect_timeout_s=connect_timeout_s or timeout_s,
                        retries=0, max_connections=POOL_SIZE)


async def app_client(ctx: RunContext, timeout_s: float = 0.25, connect_timeout_s: float | None = None,
                     warm: int = 32) -> Any:
    """The scenario's asyncio client, as the lab measures with it: the topology's app-facing
    client (plain / Sentinel master / Cluster; redlock: a list, one per node) with
    ``app_policy(timeout_s, connect_timeout_s)``, initialised (Cluster) and warmed up. The
    policy becomes ``ctx.client_policy`` (the run's config.json and result.json say it)."""
    policy = app_policy(timeout_s, connect_timeout_s)
    ctx.client_policy = policy
    client = ctx.topo.client(asyncio=True, policy=policy)
    for one in client if isinstance(client, list) else [client]:  # redlock: one client per independent node
        await prepare_client(one)
        fetch_command_table_once(one)
        await warm_up(one, warm)
    return client


def fetch_command_table_once(client: Any) -> None:
    """redis-py 8's asyncio ``RedisCluster`` re-initialises after every connection error, and
    each re-initialisation fetches and parses ``COMMAND`` again (~240 entries; measured here:
    a quarter of the generator's CPU during a Cluster failover) while every other command waits
    on the same lock. The command table does not change during a run: after the first fetch,
    re-initialisation only refreshes the slot map (``CLUSTER SLOTS``). No-op for other clients."""
    parser = getattr(client, "commands_parser", None)
    if parser is None or not getattr(parser, "commands", None) or not hasattr(parser, "initialize"):
        return

    async def initialize(node: Any = None) -> None:
        if node is not None:
            parser.node = node  # where COMMAND GETKEYS goes for commands with movable keys

    parser.initialize = initialize


def retry_policies(scenario: Scenario, depth: int = 3) -> dict[str, dict[str, Any]]:
    """The pattern retry policies (``patterns.common.RetryPolicy``) a scenario's pattern objects
    use in the generator process, by attribute path (``locks.locks`` for a dict of locks that
    share one policy): with the client policy, the run's config says every retry the lab's own
    clients make. The walk follows dicts and the lab's own objects (``experiments``/``patterns``
    modules) ``depth`` levels down; a client or a database is never entered."""
    found: dict[str, dict[str, Any]] = {}

    def walk(obj: object, path: str, left: int) -> None:
        policy = getattr(obj, "retry", None)
        if isinstance(policy, RetryPolicy):
            found.setdefault(path, policy.as_config())
            return
        if left == 0:
            return
        if isinstance(obj, dict):
            for item in obj.values():
                walk(item, path, left - 1)
        elif type(obj).__module__.split(".")[0] in ("experiments", "patterns") and hasattr(obj, "__dict__"):
            for name, item in vars(obj).items():
                walk(item, f"{path}.{name}", left - 1)

    for name, item in vars(scenario).items():  # the scenario itself, whichever module defines it
        if name != "ctx":
            walk(item, name, depth - 1)
    return found


class Scenario:
    """A pattern under load. Subclasses implement ``setup``, ``op`` and ``finish``.

    Several generator processes (``--workers N``, :mod:`experiments.generator`): only a
    scenario that declares ``parallel = True`` runs in them. The run's process then calls
    ``setup`` (what must happen once: seed data, start processes), the hooks, the fault
    plan and ``finish``; each generator process calls ``worker_setup``, ``op`` for the
    operations of its share of the clients, and ``worker_finish``, whose results
    ``finish`` finds in ``ctx.worker_states``. ``op`` must then keep no state that other
    processes' operations depend on (per-client state is fine: a client's operations all
    run in one process)."""

    parallel: ClassVar[bool] = False

    # True when every key the scenario writes starts with ``ctx.topo.key_prefix`` (required on a target)
    keys_in_prefix: bool = False
    needs_groups: bool = False  # uses client groups a and b (their own routes to every node)

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    async def setup(self) -> None:
        """Build clients and pattern objects, seed data (before the workload starts)."""

    async def op(self, client_id: int, rng: random.Random) -> OpResult:
        raise NotImplementedError

    async def worker_setup(self) -> None:
        """In each generator process of a parallel run: clients and pattern objects for ``op``
        (default: ``setup()``; override when ``setup`` does something that must happen once)."""
        await self.setup()

    async def worker_finish(self) -> dict[str, Any]:
        """In each generator process of a parallel run, after its share: close its clients and
        return what ``finish`` needs from it (default: close ``self.client``, return nothing)."""
        client = getattr(self, "client", None)
        if client is not None:
            await client.aclose()
        return {}

    async def before_fault(self, cycle: int) -> None:
        """Called before each cycle's fault plan runs (e.g. re-pin a client to the current primary)."""

    async def after_heal(self) -> None:
        """Called once the fault is healed, each cycle (e.g. a supervisor restarting a killed worker)."""

    async def finish(self) -> dict[str, Any]:
        """Drain, read back what the checks need (the final state), close everything."""
        return {}

    def fault_target_pid(self) -> int | None:
        """For client faults: the pid of the client process to hit."""
        return None

    def fault_key(self) -> str:
        """On the Cluster, node faults hit the primary owning this key's slot: the
        scenario names a key its workload uses (default: any)."""
        return "lab:probe"


def add_counts(*snapshots: dict[str, Any]) -> dict[str, Any]:
    """Counter snapshots of several processes added up, key by key (nested dicts too, e.g. ``errors``)."""
    out: dict[str, Any] = {}
    for snap in snapshots:
        for k, v in snap.items():
            if isinstance(v, dict):
                out[k] = add_counts(out.get(k) or {}, v)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
            else:
                out.setdefault(k, v)
    return out


FaultPlan = Callable[[Topology, Scenario], Fault]


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str  # one line for `redislab list`
    pattern: str
    topology: str
    scenario: type[Scenario]
    fault: FaultPlan
    fault_label: str  # e.g. "kill the Sentinel primary"
    hypothesis: dict[str, Any]
    checks: list[Any]
    options: dict[str, Any] = field(default_factory=dict)
    topologies: tuple[str, ...] = ()  # others it may also run on (--topology)
    concurrency: int = 64  # requests in flight at most, like an app's bounded worker pool
    rate_factor: float = 1.0  # x the profile's rate (heavier operations: < 1, so the generator keeps up)
    # None: runs on whatever topology is up. A dict (``topologies.spec.Options`` fields, e.g. {"appendonly":
    # True}): the run starts a topology of its own with these options (fresh: the initial primary is primary)
    # and tears it down after.
    topology_options: dict[str, Any] | None = None


@dataclass(frozen=True)
class PatternLoad:
    """A pattern's workload and invariants, independent of the fault: the matrix
    (experiments.catalogue) crosses it with every fault and topology."""

    pattern: str  # "cache-aside", "lock", ...
    scenario: type[Scenario]
    checks: list[Any]  # pattern-specific checks (the generic ones are added by the matrix)
    hypothesis: dict[str, Any] = field(default_factory=lambda: dict(HYPOTHESIS))
    options: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 64
    topologies: tuple[str, ...] = ("single", "sentinel", "cluster")  # where it can run
    rate_factor: float = 1.0  # x the profile's rate
