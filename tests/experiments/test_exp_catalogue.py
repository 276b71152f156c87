"""The catalogue's plan, answer page and verification, without Redis."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from experiments import registry
from experiments.catalogue import SHOWCASES, Item, Outcome, plan, verify, write_answer
from experiments.faultplans import FAULT_PLANS
from labcommon.errors import UnknownNameError


def test_quick_plan_crosses_every_pattern_with_every_fault_and_runs_every_quick_showcase() -> None:
    items = plan("quick")
    for pattern in registry.LOADS:
        assert {i.experiment for i in items if i.section == pattern} == {f"{pattern}-{f}" for f in FAULT_PLANS}
    for sc in SHOWCASES:
        wanted = {exp for _, exp, _ in sc.variants if exp in registry.EXPERIMENTS} if sc.quick else set()
        assert {i.experiment for i in items if i.section == sc.key} == wanted
        full = {i.experiment for i in plan("full") if i.section == sc.key}
        assert full == {exp for _, exp, _ in sc.variants if exp in registry.EXPERIMENTS}
    tops = [i.topology for i in items]
    assert tops == sorted(tops, key=["single", "sentinel", "cluster", "redlock"].index)  # grouped: few restarts


def test_full_plan_runs_the_matrix_on_every_topology_of_each_pattern() -> None:
    full = plan("full")
    for load in registry.LOADS.values():
        assert {i.topology for i in full if i.section == load.pattern} == set(load.topologies)
    assert len(full) > len(plan("quick"))


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="quick, full"):
        plan("medium")


def _fake_run(out: Path, name: str, verdict: str, plot: bool = True, during: tuple[float, ...] = (0.5, 0.6),
              lost: int = 3) -> Path:
    """A result with two fault cycles (availability during each: ``during``)."""
    run = out / name
    run.mkdir(parents=True)
    claim = {"name": "lost_writes", "verdict": verdict, "claim": "no acknowledged write is lost",
             "metrics": {"windows": [{"lost_ratio": 0.1}, {"lost_ratio": 0.3}]}, "explanation": f"{lost} lost"}
    result = {"verdict": verdict, "experiment": name, "topology": "sentinel",
              "metrics": {"cycles": [{"during": {"availability": a, "p99_ms": 250.0, "error_p50_ms": 250.0},
                                      "after": {"availability": 1.0}} for a in during],
                          "send_lag_p99_ms": 1.0},
              "claims": [claim], "violated": [claim] if verdict == "violated" else [],
              "checks": [{"name": "failover_time", "verdict": None, "claim": "",
                          "metrics": {"failovers": [{"failover_s": 2.0}, {"failover_s": 2.4}]}, "explanation": "x"},
                         {"name": "time_to_recover", "verdict": "held", "claim": "recovers",
                          "metrics": {"faults": [{"throughput_s": 1.0}, {"throughput_s": 2.0}]}, "explanation": "y"},
                         claim]}
    (run / "result.json").write_text(json.dumps(result))
    if plot:
        (run / "timeline.png").write_bytes(b"\x89PNG\r\n\x1a\nrest")
    return run


def test_answer_page_names_the_violated_claim_and_gives_every_figure_with_its_spread(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, "r1", "violated")
    ok = _fake_run(tmp_path, "r2", "held", during=(0.99, 1.0), lost=0)
    item = Item("split-brain", "no mitigation", "splitbrain-plain", "sentinel")
    fixed = Item("split-brain", "WAIT 1", "splitbrain-wait", "sentinel")
    broken = Outcome(Item("split-brain", "min-replicas", "splitbrain-min-replicas", "sentinel"), error="boom")
    outcomes = [Outcome(item, [run], [json.loads((run / "result.json").read_text())]),
                Outcome(fixed, [ok], [json.loads((ok / "result.json").read_text())]), broken]
    index = write_answer(tmp_path, outcomes, {"profile": "quick", "backend": "local", "repeat": 1, "commit": "abc",
                                              "date": "2026-11-29", "elapsed_min": 1.0, "machine": "2 cores",
                                              "command": "redislab demo --profile quick"})
    text = re.sub(" +", " ", index.read_text())  # table cells are padded
    assert "## Showcase: Split-brain write loss" in text
    assert "| no mitigation | **violated: no acknowledged write is lost** | 55.00% (50.00% to 60.00%, n=2) |" in text
    assert "2.2 s (2.0 s to 2.4 s, n=2)" in text and "[report](r1/report.html)" in text
    assert "| min-replicas | **error: boom** |" in text
    assert "no mitigation vs WAIT 1: acknowledged writes lost within the fault windows" in text  # compared
    assert "3 rows from 3 experiments, 2 runs" in text and "1 held, 1 violated, 1 error" in text
    assert "Produced by `redislab demo --profile quick`" in text
    page = (tmp_path / "index.html").read_text()
    assert '<img src="r1/timeline.png"' in page and page.count("<table>") == 1
    assert (tmp_path / "runs.md").exists()
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["rows"][0]["availability_during"] == {"median": 0.55, "low": 0.5, "high": 0.6, "n": 2}
    assert data["commit"] == "abc"


def test_showcase_variants_differ_only_when_their_ranges_do_not_overlap(tmp_path: Path) -> None:
    from experiments.answer import Row, compare
    a = json.loads((_fake_run(tmp_path, "a", "held", during=(0.1, 0.2)) / "result.json").read_text())
    b = json.loads((_fake_run(tmp_path, "b", "held", during=(0.15, 0.3)) / "result.json").read_text())
    c = json.loads((_fake_run(tmp_path, "c", "held", during=(0.9, 1.0)) / "result.json").read_text())
    lines = compare([Row("s", "A", "a", "single", [a]), Row("s", "B", "b", "single", [b]),
                     Row("s", "C", "c", "single", [c])], "availability_during")
    assert lines[0].endswith("not distinguishable (ranges overlap).")  # A vs B
    assert lines[1].endswith("a difference (ranges do not overlap).")  # A vs C


def test_verify_names_runs_without_a_plot_or_checks(tmp_path: Path) -> None:
    _fake_run(tmp_path, "good", "held")
    _fake_run(tmp_path, "noplot", "held", plot=False)
    (tmp_path / "index.md").write_text("x")
    (tmp_path / "index.html").write_text("x")
    assert verify(tmp_path) == ["noplot: no plot"]
    assert verify(tmp_path / "empty") == [f"no runs under {tmp_path / 'empty'}", "no index.md / index.html"]


def test_a_run_that_fails_to_start_is_reported_and_the_catalogue_goes_on(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # orchestration only: the runs and the topology calls are stand-ins recording what the loop asked for
    from experiments import catalogue
    from labcommon.errors import LabError
    calls: list[str] = []
    topology_calls: list[str] = []

    def fake_run(req: Any) -> Path:
        calls.append(req.experiment)
        if req.experiment == "degradation-db":
            raise LabError("the topology did not become healthy in 60 s", "see redislab status")
        run_dir = tmp_path / req.experiment
        run_dir.mkdir()
        (run_dir / "result.json").write_text(json.dumps({"experiment": req.experiment, "verdict": "held"}))
        return run_dir

    monkeypatch.setattr(catalogue, "run_experiment", fake_run)
    monkeypatch.setattr(catalogue.api, "current", lambda: None)
    monkeypatch.setattr(catalogue.api, "up", lambda name, backend: topology_calls.append(f"up {name}"))
    monkeypatch.setattr(catalogue.api, "down", lambda: topology_calls.append("down"))
    answered: list[Outcome] = []

    def fake_answer(out: Path, outcomes: list[Outcome], meta: dict[str, Any]) -> Path:
        answered.extend(outcomes)
        return out

    monkeypatch.setattr(catalogue, "write_answer", fake_answer)
    outcomes, _ = catalogue.run_catalogue("quick", "local", str(tmp_path), only=lambda i: i.section == "degradation")
    assert calls == ["degradation-none", "degradation-db", "degradation-db-breaker"]  # the third still ran
    failed = {o.item.experiment: o.error for o in outcomes}
    assert failed["degradation-db"] == "the topology did not become healthy in 60 s (hint: see redislab status)"
    assert failed["degradation-none"] is None and failed["degradation-db-breaker"] is None
    assert [r["verdict"] for o in outcomes for r in o.results] == ["held", "held"]
    assert topology_calls.count("down") >= 2  # the broken topology was taken down, and the last one at the end
    assert answered == outcomes
