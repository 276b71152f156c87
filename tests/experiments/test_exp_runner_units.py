"""The runner's pure parts: profiles and cycles, the final read that fails."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio

from experiments.model import PROFILES, Scenario
from experiments.runner import RunRequest, _final_state, _profile
from labcommon.errors import LabError


class _BrokenFinish(Scenario):
    async def finish(self) -> dict[str, Any]:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:7102. Connection refused.")


def test_a_failed_final_read_is_reported_not_raised() -> None:
    # it used to abort the run, and with it the whole demo
    state = asyncio.run(_final_state(_BrokenFinish(None)))  # type: ignore[arg-type]  # a stub scenario: no context needed
    assert state == {"final_read_error": "ConnectionError: Error 111 connecting to 127.0.0.1:7102. "
                                          "Connection refused."}


def test_profiles_schedule_a_warm_up_a_baseline_and_fault_cycles() -> None:
    quick = PROFILES["quick"]
    assert [n for n, _ in quick.phases()] == ["warmup", "baseline", "fault", "recovery", "fault", "recovery"]
    assert PROFILES["full"].cycles >= 3  # the default profile gives every figure a spread over 3 cycles
    p = _profile(RunRequest("x", cycles=4, duration_s=30))
    assert p.cycles == 4 and p.total_s == pytest.approx(30)
    with pytest.raises(LabError, match="--cycles 0 is out of range"):
        _profile(RunRequest("x", cycles=0))


def test_workers_only_for_parallel_scenarios_and_state_added_up() -> None:
    from experiments import registry
    from experiments.model import add_counts
    from experiments.runner import _check_workers
    cache, counter = registry.get("cache-primary-kill"), registry.get("counter-kill")
    quick = _profile(RunRequest("x"))
    _check_workers(RunRequest("counter-kill", workers=2), counter, quick)
    with pytest.raises(LabError, match="runs in one generator process"):
        _check_workers(RunRequest("cache-primary-kill", workers=2), cache, quick)
    with pytest.raises(LabError, match=r"accepted: 1..8"):
        _check_workers(RunRequest("counter-kill", workers=9), counter, quick)
    assert RunRequest("counter-kill", workers=2).reproduce("sentinel", "local").endswith("--workers 2")
    # counters of several generator processes: summed key by key, nested error counts too
    assert add_counts({"acquired": 2, "errors": {"TimeoutError": 1}}, {"acquired": 3, "errors": {"X": 2}}) == {
        "acquired": 5, "errors": {"TimeoutError": 1, "X": 2}}


def test_lock_sections_get_process_ids_unique_over_generator_processes() -> None:
    from experiments.scenarios.lock.scenario import SECTION_BASE, LockScenario
    from experiments.workload import Share
    seen: list[int] = []

    class _Sections:
        async def run(self, lock: str, process: int) -> None:
            seen.append(process)

    for k in range(3):
        ctx = type("Ctx", (), {"share": Share(k, 3)})()
        sc = LockScenario(ctx)  # a stand-in context (Any) with the fields used
        sc.names = ["l0", "l1", "l2", "l3"]
        sc.sections = _Sections()  # type: ignore[assignment]  # a stand-in: op() calls only run()
        for _ in range(4):
            asyncio.run(sc.op(0, __import__("random").Random(1)))
    assert len(seen) == len(set(seen)) == 12 and min(seen) > SECTION_BASE


def test_the_scenarios_client_policy_is_the_one_the_failover_bench_measures(tmp_path: Path) -> None:
    from experiments import failover_probe
    from experiments.model import app_policy
    from experiments.runner import _record_config
    assert app_policy(0.25) == failover_probe.APP_POLICY  # `make bench`'s "app" client is what runs here
    p = app_policy(1.0, 0.5)
    assert (p.socket_timeout_s, p.connect_timeout_s, p.retries) == (1.0, 0.5, 0)
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "x"}))
    _record_config(tmp_path, client_policy=p.as_config())
    assert json.loads((tmp_path / "config.json").read_text()) == {"experiment": "x", "client_policy": p.as_config()}


def test_the_config_names_every_pattern_retry_policy_the_scenario_holds() -> None:
    from experiments.model import RunContext, Scenario, retry_policies
    from experiments.scenarios.lock.variants import NaiveLocks, TokenLocks
    from patterns.common import RetryPolicy
    from patterns.leaderboard import Leaderboard

    class Held(Scenario):
        def __init__(self) -> None:
            super().__init__(cast(RunContext, object()))
            self.client = redis.asyncio.Redis(port=1)  # never connected; a client is never entered
            self.board = Leaderboard(self.client, "b", retry=RetryPolicy(attempts=4, deadline_s=1.5))
            self.locks = TokenLocks(self.client, ["a", "b"], ttl_ms=1000)  # a dict of locks two levels down
            self.naive = NaiveLocks(self.client, ["a"], ttl_ms=1000)  # no RetryPolicy anywhere
            self.nested = {"deep": {"deeper": {"deepest": Leaderboard(self.client, "c")}}}  # past the depth

    found = retry_policies(Held())
    assert set(found) == {"board", "locks.locks"}
    assert found["board"] == {"attempts": 4, "base_s": 0.01, "cap_s": 0.5, "deadline_s": 1.5,
                              "attempt_timeout_s": None, "retry_if": "is_transient"}
    assert found["locks.locks"]["attempts"] == 1 and found["locks.locks"]["deadline_s"] is None
    assert json.loads(json.dumps(found)) == found  # plain JSON for config.json
