"""The lock-expiry showcase and the leaderboard through a primary kill, short, end to
end: the checks' numbers show what happened (two holders, the stale write rejected
or accepted, acknowledged points lost or kept)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.checks import run_check
from experiments.history import History, read_history
from experiments.runner import RunRequest, run_experiment
from experiments.scenarios.lock.scenario import SLOW_HOLDER
from experiments.scenarios.lock.store import FencedStore
from faults.injector import active_faults
from tests.conftest import LabManager

pytestmark = pytest.mark.integration
# The pattern scenarios run on the local backend here; `make demo` runs them on Docker too.
BACKEND = "local"
DURATION_S = 14  # one cycle: warm-up ~1.2 s, baseline ~2.3 s, fault ~4.7 s (the pause: 2.3x the lock TTL),
# recovery ~5.8 s


def _run(tmp_path: Path, experiment: str, backend: str) -> tuple[dict, Path]:
    run_dir = run_experiment(RunRequest(experiment, backend=backend, duration_s=DURATION_S, out=str(tmp_path),
                                        progress=False, cycles=1))
    result = json.loads((run_dir / "result.json").read_text())
    assert result["verdict"] in ("held", "violated", "unknown")
    assert active_faults() == []  # the pause (or kill) was healed
    return result, run_dir


def _check(result: dict, name: str) -> dict:
    return next(c for c in result["checks"] if c["name"] == name)


def _holder_writes(run_dir: Path) -> list:
    history = read_history(run_dir / "history.jsonl")
    assert not list(run_dir.glob("slow-holder.jsonl"))  # merged into the history
    exits = [e for e in history.events if e.kind == "worker" and e.fields["action"] == "exit"]
    assert exits and exits[0].fields["code"] is not None  # the holder process was stopped
    return [o for o in history.ops if o.client == SLOW_HOLDER and o.op == "fenced_write"]


def _only_the_paused_holder_overlaps(run_dir: Path) -> bool:
    """Without the slow holder's records, no two holds overlap (the lock itself worked)."""
    history = read_history(run_dir / "history.jsonl")
    others = History([o for o in history.ops if o.client != SLOW_HOLDER], history.events, history.meta)
    return run_check("lock_overlap", others).verdict == "held"


def test_fencing_rejects_the_paused_holders_stale_write(lab: LabManager, tmp_path: Path) -> None:
    lab("single", BACKEND)
    result, run_dir = _run(tmp_path, "lock-expiry-fenced", BACKEND)
    fencing = _check(result, "fencing")
    m = fencing["metrics"]
    assert fencing["verdict"] == "held", fencing
    assert m["fenced_rejections"] >= 1 and m["violations"] == 0 and m["accepted"] > 100
    overlap = _check(result, "lock_overlap")
    assert overlap["verdict"] == "violated" and SLOW_HOLDER in overlap["metrics"]["examples"][0]["clients"]
    assert _only_the_paused_holder_overlaps(run_dir)
    late = _holder_writes(run_dir)
    assert len(late) == 1 and late[0].ok and late[0].value == {"accepted": False}
    assert late[0].phase == "recovery"  # written after the resume


def test_without_fencing_the_stale_write_is_accepted(lab: LabManager, tmp_path: Path) -> None:
    lab("single", BACKEND)
    result, run_dir = _run(tmp_path, "lock-expiry-unfenced", BACKEND)
    fencing = _check(result, "fencing")
    m = fencing["metrics"]
    assert fencing["verdict"] == "violated", fencing
    assert m["violations"] >= 1 and m["fenced_rejections"] == 0
    assert any(v["client"] == SLOW_HOLDER for v in m["examples"])
    assert _check(result, "lock_overlap")["verdict"] == "violated" and _only_the_paused_holder_overlaps(run_dir)
    late = _holder_writes(run_dir)
    assert len(late) == 1 and late[0].value == {"accepted": True}
    state = read_history(run_dir / "history.jsonl").final_state()
    assert sum(r["stale_accepted"] for r in state["lock_resource"].values()) >= 1  # the store agrees


def test_leaderboard_counts_acknowledged_points_through_a_primary_kill(lab: LabManager, tmp_path: Path) -> None:
    lab("sentinel", BACKEND)
    result, run_dir = _run(tmp_path, "leaderboard-primary-kill", BACKEND)
    check = _check(result, "leaderboard_increments")
    m = check["metrics"]
    assert check["verdict"] in ("held", "violated"), check  # fail = acknowledged points lost: evidence, not a bug
    state = read_history(run_dir / "history.jsonl").final_state()
    assert m["acked_sum"] > 0 and state["final_total"] > 0
    assert m["lost_sum"] >= 0 and m["phantom_sum"] == 0
    assert state["final_total"] >= m["acked_sum"] - m["lost_sum"]  # what survived is at least acked - lost
    failover = _check(result, "failover_time")["metrics"]
    assert failover["failover_s"] is not None
    # the clients' share of each outage, after Sentinel announced the new primary, is measured (not None)
    assert failover["client_s"] is not None and failover["client_s"] >= 0, failover["failovers"]
    assert result["client_policy"]["socket_timeout_s"] == 0.25 and result["client_policy"]["retries"] == 0
    assert all(o.kind == "workload" for o in read_history(run_dir / "history.jsonl").workload)


def test_fenced_store_rejects_stale_and_reused_tokens(tmp_path: Path) -> None:
    store = FencedStore(tmp_path / "r.sqlite", ["a"])
    assert store.write("a", 3, "h1", "x", fenced=True) and store.write("a", 3, "h1", "x2", fenced=True)
    assert not store.write("a", 2, "h0", "y", fenced=True)  # stale
    assert not store.write("a", 3, "h2", "z", fenced=True)  # fence 3 again, from another holder: reused
    assert store.write("a", 4, "h2", "w", fenced=True)
    unfenced = FencedStore(tmp_path / "u.sqlite", ["a"])
    assert unfenced.write("a", 3, "h1", "x", fenced=False) and unfenced.write("a", 2, "h0", "y", fenced=False)
    assert unfenced.write("a", 3, "h2", "z", fenced=False)
    assert store.summary()["a"] == {"fence": 4, "value": "w", "writes": 3, "rejected": 2, "reused": 1,
                                    "stale_accepted": 0}
    assert unfenced.summary()["a"]["stale_accepted"] == 2 and unfenced.summary()["a"]["reused"] == 1
