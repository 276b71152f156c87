"""The Chaos Toolkit extension without a topology: the exported experiments against chaoslib's own
validation (module, function and arguments bound to the signatures), the refusal of fault plans
that cannot be expressed, and the history probe on small written histories."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from chaoslib.experiment import ensure_experiment_is_valid
from chaoslib.hypothesis import within_tolerance

from experiments.history import FAULT_HEAL, FAULT_INJECT, HistoryWriter, Op
from experiments.registry import EXPERIMENTS
from labcommon.errors import LabError
from redislab.ctk import export, probes


def test_every_exportable_experiment_passes_chaoslib_validation() -> None:
    names = [n for n, e in EXPERIMENTS.items() if export.exportable(e)]
    assert "cache-primary-kill" in names and "counter-partition" in names
    for name in names:
        ensure_experiment_is_valid(export.experiment(name))  # raises InvalidActivity / InvalidExperiment


def test_method_is_fault_cycles_with_phase_pauses_and_a_healing_rollback() -> None:
    doc = export.experiment("cache-aside-latency", profile="quick", cycles=2)
    funcs = [(a["provider"]["func"], a.get("pauses")) for a in doc["method"]]
    assert funcs == [("inject_fault", {"after": 4}), ("heal", {"after": 5}),
                     ("inject_fault", {"after": 4}), ("heal", None)]
    assert doc["method"][0]["provider"]["arguments"] == {
        "kind": "latency", "target": "primary", "params": {"latency_ms": 300, "direction": "both"}}
    assert [r["provider"]["func"] for r in doc["rollbacks"]] == ["heal_all"]
    probes_ = doc["steady-state-hypothesis"]["probes"]
    assert [(p["provider"]["func"], p["tolerance"]) for p in probes_] == [
        ("topology_healthy", True), ("primary_present", True)]
    assert probes_[1]["provider"]["arguments"]["timeout_s"] == 5  # the recovery phase


def test_fault_plan_that_cannot_be_expressed_is_refused() -> None:
    with pytest.raises(LabError, match=r"splitbrain-plain: its fault plan .* cannot be written"):
        export.experiment("splitbrain-plain")
    with pytest.raises(LabError, match="cycles 0 is out of range"):
        export.experiment("cache-aside-kill", cycles=0)


def test_cli_writes_the_file_and_refuses_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "exp.json"
    ok = subprocess.run([sys.executable, "-m", "redislab.cli", "export-ctk", "counter-kill", "--out", str(out)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(out.read_text())["extensions"][0]["experiment"] == "counter-kill"
    bad = subprocess.run([sys.executable, "-m", "redislab.cli", "export-ctk", "queue-consumer-kill"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: queue-consumer-kill: its fault plan")


def _outage_history(path: Path, recovers: bool) -> None:
    """10 ops/s: baseline 0-10 s ok, fault 10-20 s failing, recovery 20-30 s ok or failing."""
    with HistoryWriter(path) as w:
        for i in range(300):
            t = i / 10
            phase = "baseline" if t < 10 else "fault" if t < 20 else "recovery"
            ok = phase == "baseline" or (phase == "recovery" and recovers)
            w.write_op(Op(0, "get", None, t, t, t + 0.001, w.wall_at(t), "ok" if ok else "fail",
                          None, None if ok else "ConnectionError", None, phase))
        w.event(FAULT_INJECT, t=10.0, fault="f1", label="kill primary")
        w.event(FAULT_HEAL, t=20.0, fault="f1", label="kill primary")


@pytest.mark.parametrize("recovers,status", [(True, "held"), (False, "violated")])
def test_history_check_probe_reports_the_verdict_as_status(tmp_path: Path, recovers: bool, status: str) -> None:
    _outage_history(tmp_path / "history.jsonl", recovers)
    result = probes.history_check(str(tmp_path), "time_to_recover")  # a run directory works too
    assert result["status"] == status and result["name"] == "time_to_recover"
    assert within_tolerance(["held"], result) is recovers  # how a hypothesis tolerance judges it


def test_history_check_probe_marks_measurements(tmp_path: Path) -> None:
    _outage_history(tmp_path / "history.jsonl", True)
    assert probes.history_check(str(tmp_path / "history.jsonl"), "time_to_detect")["status"] == "measured"
