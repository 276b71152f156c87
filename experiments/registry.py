"""The experiments, by name. Adding one = a scenario (experiments/scenarios/) + one entry here."""
from __future__ import annotations

from experiments.model import Experiment
from experiments.scenarios.cache import TTL_MS, CacheScenario
from experiments.scenarios.queue import QueueScenario
from faults import catalog
from topologies.errors import UnknownNameError

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment(
        name="cache-primary-kill",
        summary="cache-aside (DB fallback + breaker) while the Sentinel primary is killed: "
                "does fallback keep serving, how long is the failover, how much extra DB load?",
        pattern="cache-aside", topology="sentinel", topologies=("single", "cluster"),
        scenario=CacheScenario,
        fault=lambda topo, sc: catalog.make("kill", topo.primary() or topo.spec.redis_nodes[0].name),
        fault_label="kill the primary",
        hypothesis={"availability_min": 0.99, "p99_max_ms": 50.0},
        checks=["steady_state", "errors_by_type", "send_lag", "time_to_detect",
                {"name": "time_to_recover", "params": {}}, "failover_time", "cache_fallback",
                {"name": "cache_stale_reads", "params": {"max_staleness_s": TTL_MS / 1000}}],
        options={"fallback": "database+breaker"},
    ),
    Experiment(
        name="queue-consumer-kill",
        summary="Streams work queue while a consumer process is SIGKILLed mid-batch: "
                "is any acknowledged message lost, how many redeliveries, how long?",
        pattern="work-queue", topology="single", topologies=("sentinel", "cluster"),
        scenario=QueueScenario,
        fault=lambda topo, sc: catalog.make("client_kill", f"pid:{sc.fault_target_pid()}"),
        fault_label="SIGKILL consumer-1",
        hypothesis={"availability_min": 0.99, "p99_max_ms": 50.0, "phases": ["baseline", "fault", "recovery"]},
        checks=["steady_state", "errors_by_type", "send_lag",
                {"name": "queue_delivery", "params": {"max_stuck": 0}}],
    ),
)}


def get(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise UnknownNameError("experiment", name, list(EXPERIMENTS), "see `redislab list`")
    return EXPERIMENTS[name]
