"""Report rendering from a synthetic history (no Redis, no workload run)."""

import json
from pathlib import Path
from typing import Any

from experiments.history import BREAKER, FAULT_HEAL, FAULT_INJECT, FINAL_STATE, PHASE, ROLE, RUN_END, HistoryWriter
from experiments.report import render_run, write_index
from tests.experiments.exp_helpers import steady

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(run_dir: Path, *, lose_write: bool = False, completed: bool = True, extra_lanes: bool = False,
             config: dict[str, Any] | None = None) -> Path:
    """10 s baseline, 5 s outage of an 'add' workload, 10 s recovery."""
    run_dir.mkdir(parents=True)
    ops = (steady("add", 0, 10, phase="baseline") + steady("add", 10, 15, outcome="fail",
                                                          latency=0.05, phase="fault")
           + steady("add", 15, 25, phase="recovery"))
    for i, o in enumerate(ops):
        o.args = {"value": i}
    acked = [o.args["value"] for o in ops if o.ok]
    if lose_write:
        acked = acked[1:]
    with HistoryWriter(run_dir / "history.jsonl") as w:
        for name, a, b in (("baseline", 0, 10), ("fault", 10, 15), ("recovery", 15, 25)):
            w.event(PHASE, t=a, name=name, start=a, end=b, cycle=None if name == "baseline" else 1)
        w.event(FAULT_INJECT, t=10, fault="kill", label="kill primary")
        w.event(FAULT_HEAL, t=15, fault="kill", label="kill primary")
        if extra_lanes:
            w.event(BREAKER, t=10.2, name="redis", state="open")
            w.event(BREAKER, t=15.5, name="redis", state="closed")
            w.event(ROLE, t=0, node="n1", role="master")
            w.event(ROLE, t=12, node="n2", role="master")
        for o in ops:
            w.write_op(o)
        w.event(FINAL_STATE, t=25, set=acked)
        if completed:
            w.event(RUN_END, t=25)
    cfg = {"experiment": "kill-primary", "pattern": "set", "topology": "sentinel",
           "backend": "docker", "hypothesis": {"availability_min": 0.99, "p99_max_ms": 50},
           "checks": ["steady_state", "errors_by_type", "time_to_detect", "time_to_recover",
                      "lost_writes"]}
    cfg.update(config or {})
    (run_dir / "config.json").write_text(json.dumps(cfg))
    return run_dir


def test_render_run_writes_result_plot_and_report(tmp_path: Path) -> None:
    run = make_run(tmp_path / "results" / "r1")
    result = render_run(run, reproduce="redislab run kill-primary --seed 1")
    saved = json.loads((run / "result.json").read_text())
    assert saved == result
    assert saved["verdict"] == "held" and saved["interrupted"] is False
    assert [c["name"] for c in saved["checks"]] == ["steady_state", "errors_by_type",
                                                    "time_to_detect", "time_to_recover",
                                                    "lost_writes"]
    assert saved["reproduce"] == "redislab run kill-primary --seed 1"
    m = saved["metrics"]
    assert m["during_fault"]["availability"] == 0.0
    assert m["before_fault"]["availability"] == 1.0 and m["after_heal"]["availability"] == 1.0
    assert m["spread"]["availability_during"] == {"median": 0.0, "low": 0.0, "high": 0.0, "n": 1}
    assert m["time_to_detect_s"] is not None and m["time_to_recover_s"] is not None
    assert [c["name"] for c in saved["measurements"]] == ["errors_by_type", "time_to_detect"]
    assert [c["name"] for c in saved["claims"]] == ["steady_state", "time_to_recover", "lost_writes"]
    assert (run / "timeline.png").read_bytes()[:8] == PNG_MAGIC
    md = (run / "report.md").read_text()
    assert md.startswith("# kill-primary: held: all 3 claims") and "](timeline.png)" in md
    assert "## The answer" in md and "kill primary" in md and "0.00% availability" in md
    assert "redislab run kill-primary --seed 1" in md
    page = (run / "report.html").read_text()
    assert '<img class="plot" src="timeline.png"' in page and '<a href="history.jsonl">' in page


def test_violation_fails_and_is_explained(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", lose_write=True)
    result = render_run(run)
    assert result["verdict"] == "violated"
    assert [c["name"] for c in result["violated"]] == ["lost_writes"]
    md = (run / "report.md").read_text()
    assert md.startswith("# kill-primary: violated: no acknowledged write is lost")
    assert "acknowledged writes were lost" in md


def test_rerender_reproduces_result(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", extra_lanes=True)
    first = (render_run(run), (run / "report.md").read_text())
    second = (render_run(run), (run / "report.md").read_text())
    assert first == second
    assert (run / "timeline.png").read_bytes()[:8] == PNG_MAGIC


def test_interrupted_run_is_marked_and_not_a_pass(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", completed=False)
    result = render_run(run)
    assert result["interrupted"] is True and result["verdict"] == "unknown"
    assert "INTERRUPTED" in (run / "report.md").read_text()
    assert "the run was interrupted" in result["run_problems"]
    assert render_run(make_run(tmp_path / "r2"), interrupted=True)["interrupted"] is True


def test_unknown_check_in_config_is_reported_not_crashing(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r", config={"checks": ["steady_state", "lost_writez"]})
    result = render_run(run)
    bad = next(c for c in result["checks"] if c["name"] == "lost_writez")
    assert bad["verdict"] == "unknown" and "lost_writes" in bad["explanation"]
    assert result["verdict"] == "unknown"


def test_default_checks_without_config(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r")
    (run / "config.json").unlink()
    result = render_run(run)
    assert {c["name"] for c in result["checks"]} == {"steady_state", "errors_by_type", "send_lag",
                                                     "time_to_detect", "time_to_recover"}
    assert result["run_id"] == "r"


def test_write_index(tmp_path: Path) -> None:
    results = tmp_path / "results"
    render_run(make_run(results / "run-a"))
    render_run(make_run(results / "run-b", lose_write=True))
    (results / "run-c").mkdir()  # a run without result.json is skipped
    md_path, html_path = write_index(results)
    md = md_path.read_text()
    assert md_path.name == "runs.md" and html_path.name == "runs.html"
    assert "run-a" in md and "run-b" in md and "run-c" not in md
    assert "held" in md and "violated" in md and "sentinel" in md
    assert "[report](run-a/report.html)" in md
    html = html_path.read_text()
    assert '<a href="run-b/timeline.png">plot</a>' in html and "<table>" in html


def test_result_and_report_state_the_client_policy_and_the_clients_share_of_the_outage(tmp_path: Path) -> None:
    from patterns.common import RetryPolicy
    from topologies.clients import ClientPolicy
    run = tmp_path / "r"
    run.mkdir()
    # inject at 10, new primary announced at 12, clients fail until 12.4 and are served from 12.5; heal at 15
    ops = (steady("add", 0, 10, phase="baseline") + steady("add", 10, 12.5, outcome="fail", phase="fault")
           + steady("add", 12.5, 15, phase="fault") + steady("add", 15, 25, phase="recovery"))
    with HistoryWriter(run / "history.jsonl") as w:
        for name, a, b in (("baseline", 0, 10), ("fault", 10, 15), ("recovery", 15, 25)):
            w.event(PHASE, t=a, name=name, start=a, end=b, cycle=None if name == "baseline" else 1)
        w.event(ROLE, t=0, node="redis-1", role="primary")
        w.event(ROLE, t=0, node="redis-2", role="replica")
        w.event(FAULT_INJECT, t=10, fault="kill", label="kill primary")
        w.event(ROLE, t=12, node="redis-2", role="primary")
        w.event(FAULT_HEAL, t=15, fault="kill", label="kill primary")
        for o in ops:
            w.write_op(o)
        w.event(FINAL_STATE, t=25)
        w.event(RUN_END, t=25)
    policy = ClientPolicy(socket_timeout_s=0.5, max_connections=128).as_config()
    (run / "config.json").write_text(json.dumps({
        "experiment": "kill-primary", "topology": "sentinel", "client_policy": policy,
        "pattern_retry": {"board": RetryPolicy(attempts=3, deadline_s=2.0).as_config()},
        "checks": ["steady_state", "time_to_detect", "failover_time"]}))
    result = render_run(run)
    assert result["client_policy"] == policy and policy["socket_timeout_s"] == 0.5 and policy["retries"] == 0
    share = result["metrics"]["spread"]["client_share_s"]
    assert share["n"] == 1 and abs(share["median"] - 0.501) < 1e-6  # 12.0 -> first ok op ends at 12.501
    assert abs(result["metrics"]["spread"]["failover_s"]["median"] - 2.0) < 1e-9
    md = (run / "report.md").read_text()
    assert "Redis needed 2.0 s to promote; clients needed 501 ms more" in md
    assert "socket_timeout_s=0.5" in md and "retries=0" in md
    assert "After each promotion the clients needed 501 ms more" in md
    assert result["pattern_retry"]["board"]["attempts"] == 3
    assert "Pattern retry (on top of the client's, per logical operation): board: attempts=3" in md
