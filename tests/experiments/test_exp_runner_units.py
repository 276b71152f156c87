"""The runner's pure parts: profiles and cycles, the final read that fails."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from experiments.model import PROFILES, Scenario
from experiments.runner import RunRequest, _final_state, _profile
from topologies.errors import LabError


class _BrokenFinish(Scenario):
    async def finish(self) -> dict[str, Any]:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:7102. Connection refused.")


def test_a_failed_final_read_is_reported_not_raised() -> None:
    # it used to abort the run, and with it the whole demo
    state = asyncio.run(_final_state(_BrokenFinish(None)))  # type: ignore[arg-type]
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


def test_the_scenarios_client_policy_is_the_one_the_failover_bench_measures(tmp_path) -> None:
    import json

    from experiments.model import app_policy
    from experiments.runner import _record_config
    from topologies import failover_probe
    assert app_policy(0.25) == failover_probe.APP_POLICY  # `make bench`'s "app" client is what runs here
    p = app_policy(1.0, 0.5)
    assert (p.socket_timeout_s, p.connect_timeout_s, p.retries) == (1.0, 0.5, 0)
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "x"}))
    _record_config(tmp_path, client_policy=p.as_config())
    assert json.loads((tmp_path / "config.json").read_text()) == {"experiment": "x", "client_policy": p.as_config()}
