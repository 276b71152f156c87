"""The catalogue's plan, answer page and verification, without Redis."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import registry
from experiments.catalogue import SHOWCASES, Item, Outcome, plan, verify, write_catalogue_index
from experiments.faultplans import FAULT_PLANS
from topologies.errors import UnknownNameError


def test_quick_plan_crosses_every_pattern_with_every_fault_and_runs_every_registered_showcase() -> None:
    items = plan("quick")
    for pattern in registry.LOADS:
        assert {i.experiment for i in items if i.section == pattern} == {f"{pattern}-{f}" for f in FAULT_PLANS}
    for sc in SHOWCASES:
        wanted = {exp for _, exp, _ in sc.variants if exp in registry.EXPERIMENTS}
        assert {i.experiment for i in items if i.section == sc.key} == wanted
    tops = [i.topology for i in items]
    assert tops == sorted(tops, key=["single", "sentinel", "cluster"].index)  # grouped: few restarts


def test_full_plan_runs_the_matrix_on_every_topology_of_each_pattern() -> None:
    full = plan("full")
    for load in registry.LOADS.values():
        assert {i.topology for i in full if i.section == load.pattern} == set(load.topologies)
    assert len(full) > len(plan("quick"))


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="quick, full"):
        plan("medium")


def _fake_run(out: Path, name: str, verdict: str, plot: bool = True) -> Path:
    run = out / name
    run.mkdir(parents=True)
    result = {"verdict": verdict, "experiment": name, "metrics": {"overall": {"availability": 1.0, "p99_ms": 2.0},
              "during_fault": {"availability": 0.5, "p99_ms": 250.0}, "time_to_recover_s": 1.5},
              "checks": [{"name": "failover_time", "verdict": "pass", "metrics": {"failover_s": 2.0},
                          "explanation": "x"},
                         {"name": "lost_writes", "verdict": verdict, "metrics": {}, "explanation": "3 lost"}]}
    (run / "result.json").write_text(json.dumps(result))
    if plot:
        (run / "timeline.png").write_bytes(b"\x89PNG\r\n\x1a\nrest")
    return run


def test_answer_page_has_a_table_per_section_with_numbers_and_links(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, "r1", "fail")
    item = Item("split-brain", "no mitigation", "splitbrain-plain", "sentinel")
    broken = Outcome(Item("split-brain", "WAIT 1", "splitbrain-wait", "sentinel"), None, None, "boom")
    index = write_catalogue_index(tmp_path, [Outcome(item, run, json.loads((run / "result.json").read_text())),
                                             broken], "quick", 60.0)
    text = index.read_text()
    assert "## Showcase: Split-brain write loss" in text
    assert "| no mitigation | FAIL | 50.00% | 250 ms | 2.0 s | 1.5 s | lost_writes: 3 lost | [report](r1/report.md)" in text
    assert "| WAIT 1 | ERROR |" in text and "2 rows from 2 runs" in text and "1 fail, 1 error" in text
    assert (tmp_path / "index.html").read_text().count("<table>") == 1 and (tmp_path / "runs.md").exists()


def test_verify_names_runs_without_a_plot_or_checks(tmp_path: Path) -> None:
    _fake_run(tmp_path, "good", "pass")
    _fake_run(tmp_path, "noplot", "pass", plot=False)
    (tmp_path / "index.md").write_text("x")
    (tmp_path / "index.html").write_text("x")
    assert verify(tmp_path) == ["noplot: no plot"]
    assert verify(tmp_path / "empty") == [f"no runs under {tmp_path / 'empty'}", "no index.md / index.html"]
