"""The ``fault_outcome`` measurement on small hand-written histories, and the runs that report it."""
from __future__ import annotations

from experiments import registry
from experiments.checks import run_check
from faults.events import FAULT_HEAL, FAULT_INJECT
from tests.experiments.exp_helpers import ev, fault, history


def test_fault_outcome_tells_who_ended_a_stall_and_flags_a_fault_that_failed_half_way() -> None:
    h = history(ev(FAULT_INJECT, 1.0, fault="slow_command:redis-1"),
                ev(FAULT_HEAL, 5.0, fault="slow_command:redis-1", outcome={
                    "how": "lua", "lasted_s": 1.9, "ended_by": "a SCRIPT KILL sent before the heal"}),
                ev(FAULT_INJECT, 6.0, fault="reshard:redis-2"),
                ev(FAULT_HEAL, 9.0, fault="reshard:redis-2", outcome={"moved": {"100": 40}, "fixed": 1,
                                                                       "error": "RuntimeError: IOERR"}))
    r = run_check("fault_outcome", h, {}, {})
    assert r.verdict is None and r.metrics["errors"] == 1
    assert "lasted 1.9 s, ended by a SCRIPT KILL sent before the heal" in r.explanation
    assert "moved 40 keys in 1 slots" in r.explanation and "ERROR half way: RuntimeError: IOERR" in r.explanation
    assert "1 of 2 did not go as planned" in r.explanation
    quiet = run_check("fault_outcome", history(fault(1.0, 2.0)), {}, {})
    assert quiet.explanation == "The faults reported nothing beyond their parameters."


def test_every_stall_rolling_restart_and_resharding_run_reports_what_its_fault_did() -> None:
    for name in ("stall-lua", "stall-debug-sleep", "stall-keys", "stall-debug-sleep-cluster", "rolling-restart-plain",
                 "rolling-restart-min-replicas", "rolling-restart-wait", "cluster-reshard"):
        assert "fault_outcome" in registry.get(name).checks, name
