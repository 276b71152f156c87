"""Targets: the file (schema + one-line errors), what runs on a target, and end to end against a
Sentinel deployment started without the lab's topology code (tests/targets/target_deployment.py)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from labcommon.errors import LabError
from labcommon.poll import wait_until
from targets.target import TargetTopology, load
from tests.conftest import LabManager
from tests.targets import target_deployment as dep

REDISLAB = [sys.executable, "-m", "redislab.cli"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, dep.PASSWORD_ENV: dep.PASSWORD}
    return subprocess.run([*REDISLAB, *args], capture_output=True, text=True, timeout=240, env=env)


def _doc(tmp_path: Path, allowed: list[str], destructive: bool = True) -> Path:
    return dep.Deployment(tmp_path).target_file(tmp_path / "target.yml", allowed, destructive)


# -- the file (no Redis) ------------------------------------------------------------------------
def test_valid_file_checks_ok(tmp_path: Path) -> None:
    path = _doc(tmp_path, ["kill", "latency", "partition"])
    res = cli("target", "check", str(path))
    assert res.returncode == 0, res.stderr
    assert "ok (sentinel, 3 nodes, 3 Sentinels" in res.stdout


@pytest.mark.parametrize("edit, fragment", [
    (lambda d: d.update(kind="ring"), "$.kind: 'ring' is not one of"),
    (lambda d: d["nodes"][1].update(address="127.0.0.1"), "$.nodes[1].address"),
    (lambda d: d["limits"].pop("key_prefix"), "'key_prefix' is a required property"),
    (lambda d: d["limits"].update(allow_destructive=False), "allow_destructive is not true"),
    (lambda d: d.pop("master_name"), "kind sentinel needs `sentinels`"),
    (lambda d: d.update(password="hunter2"), "Additional properties are not allowed ('password'"),
    (lambda d: d.pop("toxiproxy"), "no Toxiproxy API is given"),
    (lambda d: d["nodes"][2].update(name="redis-1"), "node names must be unique; repeated: redis-1"),
])
def test_bad_file_one_line(tmp_path: Path, edit: Callable[[dict[str, Any]], object], fragment: str) -> None:
    path = _doc(tmp_path, ["kill", "latency", "partition"])
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    res = cli("target", "check", str(path))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert fragment in lines[0], lines[0]


def test_yaml_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text("kind: sentinel\nnodes: [\n")
    res = cli("target", "check", str(path))
    assert res.returncode == 2 and "line" in res.stderr and "not valid YAML" in res.stderr


def test_list_says_what_is_not_runnable_and_why(tmp_path: Path) -> None:
    res = cli("list", "--target", str(_doc(tmp_path, ["kill"])))
    assert res.returncode == 0, res.stderr
    lines = {ln.split()[0]: ln for ln in res.stdout.splitlines()}
    assert lines["cache-aside-kill"].endswith("runnable")
    assert "needs partition, not in limits.allowed_faults" in lines["counter-partition"]
    assert "keys are not confined" in lines["work-queue-kill"]
    assert "fault plan is not classified" in lines["memory-noeviction"]


def test_partition_without_both_directions_is_refused(tmp_path: Path) -> None:
    """Isolating a replica: its replication link goes to the primary's shared proxy, which only an
    inbound cut of the primary could stop, cutting the other replica too."""
    os.environ[dep.PASSWORD_ENV] = dep.PASSWORD
    topo = TargetTopology(load(_doc(tmp_path, ["partition"])))
    topo.role = lambda name: {"redis-1": "primary"}.get(name, "replica")  # type: ignore[method-assign]  # a stub role() for this test
    with pytest.raises(LabError, match="inbound-only cut is not a partition"):
        topo.partition_plan(["redis-2"], ["redis-1", "redis-3", "sentinel-1", "sentinel-2", "sentinel-3",
                                          "@a", "@b", "@clients"])
    plan = topo.partition_plan(["redis-1", "@a"], ["redis-2", "redis-3", "sentinel-1", "sentinel-2", "sentinel-3",
                                                   "@b"])
    assert plan == sorted(["redis-1", "redis-1-b", "redis-2-a", "redis-3-a", "sentinel-1-a", "sentinel-2-a",
                           "sentinel-3-a"])


# -- end to end ---------------------------------------------------------------------------------
@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[dep.Deployment]:
    d = dep.Deployment(tmp_path)
    try:
        d.start()
        yield d
    finally:
        d.stop()


def _section_it_cannot_run(path: Path) -> str:
    """A section of the quick catalogue none of whose rows the target can run."""
    from experiments import registry
    from experiments.catalogue import plan
    from experiments.target_fit import runnable
    topo = TargetTopology(dataclasses.replace(load(path), password_env=None))
    rows = plan("quick")
    return next(s for s in sorted({i.section for i in rows})
                if not any(runnable(topo, registry.get(i.experiment))[0] for i in rows if i.section == s))


def _run_of(results: Path, experiment: str) -> Path:
    """The run directory of ``experiment`` under ``results`` (one run each)."""
    return next(p for p in results.glob(f"*-{experiment}-sentinel-*") if (p / "result.json").is_file())


# Figures that are a coin flip per cycle on the lab itself, so two cycles cannot bound them: under 300 ms
# each way a Sentinel's PING waits 600 ms, over half of down-after-milliseconds (1 s), and Sentinel drops
# and reconnects that link; whether the primary is then judged down varies by cycle ([0, 1] or [0, 0]).
# Where the two runs' promotions differ, claims that follow a promotion differ too (a cycle that failed
# over recovers its throughput later: time_to_recover), so verdicts are compared only when they match.
COIN_FLIPS = {"cache-aside-latency": ("promoted",)}
# Claims judged on a latency threshold per window (p99 <= 50 ms in every window after a heal): one stall
# of the machine flips them. CI: the lab's cache-aside-partition run violated its steady state after heal
# 2 (p99 70 ms) from one stall at 20.0 s (sends 48 ms late, the operations in flight 57-136 ms) where the
# target's held. Their figures are compared above, within margins; the claims about what the app saw
# (lost writes, reads of its own writes, stale reads) must agree.
LATENCY_SLO_CLAIMS = ("steady_state", "during_fault")


def _promotions(run: Path) -> list[bool]:
    """Per cycle: whether a node was promoted (the run's failover_time check)."""
    checks = json.loads((run / "result.json").read_text())["checks"]
    check = next(c for c in checks if c["name"] == "failover_time")
    return [bool(f.get("promoted")) for f in check["metrics"]["failovers"]]


def _matches_the_labs_own_topology(target_runs: Path, lab_out: Path) -> None:
    """The same rows on the lab's own Sentinel topology (same profile, cycles, seed): `redislab compare`
    finds every figure of the target's runs within the lab's spread and the claims' verdicts agreeing
    (the latency-threshold claims aside: ``LATENCY_SLO_CLAIMS``).
    (A target's partition that disabled its proxies failed this: connections refused at once gave a p99
    during the fault of ~3 ms against the lab's ~253 ms, where packets are dropped until a timeout.)"""
    lab = cli("demo", "--backend", "local", "--only", "cache-aside", "--out", str(lab_out))
    assert lab.returncode == 0, lab.stderr[-2000:]
    for exp in ("cache-aside-kill", "cache-aside-latency", "cache-aside-partition"):
        lab_run, target_run = _run_of(lab_out, exp), _run_of(target_runs, exp)
        res = cli("compare", str(lab_run), str(target_run), "--json")
        assert res.returncode in (0, 1), res.stderr
        doc = json.loads(res.stdout)
        figures = {f["key"]: f for f in doc["figures"]}
        outside = {k: f["why"] for k, f in figures.items()
                   if f["outcome"] == "outside" and k not in COIN_FLIPS.get(exp, ())}
        assert not outside, f"{exp}: outside the lab's spread: {outside}"
        compared = [k for k, f in figures.items() if f["outcome"] in ("within", "outside")]
        assert {"availability_during", "p99_during_ms", "promoted"} <= set(compared), (exp, figures)
        if exp not in COIN_FLIPS or sorted(_promotions(lab_run)) == sorted(_promotions(target_run)):
            disagree = [c for c in doc["claims"] if not c["agree"] and c["name"] not in LATENCY_SLO_CLAIMS]
            assert not disagree, (exp, disagree, doc["verdicts"])


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_experiments_run_on_a_target_and_heal_leaves_it_as_found(deployment: dep.Deployment, tmp_path: Path,
                                                                 fresh_lab: LabManager) -> None:
    """``fresh_lab``: the lab's own runs below bring up their own topology (nothing of the suite's is up)."""
    path = deployment.target_file(tmp_path / "target.yml", ["kill", "latency", "partition"])
    out = tmp_path / "results"
    # the catalogue's rows that can run there (one section), the others skipped with their reason
    demo = cli("demo", "--target", str(path), "--only", "cache-aside", "--out", str(out / "demo"))
    assert demo.returncode == 0, demo.stderr[-2000:]
    _matches_the_labs_own_topology(out / "demo", tmp_path / "lab")
    blocked = _section_it_cannot_run(path)  # e.g. a showcase of the lab's own persistence settings
    none = cli("demo", "--target", str(path), "--only", blocked, "--out", str(out / "none"))
    assert none.returncode != 0 and "no row of the catalogue can run on target" in none.stderr, none.stderr
    summary = json.loads((out / "demo" / "summary.json").read_text())
    assert sorted(r["experiment"] for r in summary["rows"]) == ["cache-aside-kill", "cache-aside-latency",
                                                                  "cache-aside-partition"]
    assert all(r["verdict"] in ("held", "violated", "unknown") for r in summary["rows"])
    for exp in ("splitbrain-plain", "counter-partition"):
        res = cli("run", exp, "--target", str(path), "--duration", "8", "--cycles", "1", "--out", str(out))
        assert res.returncode == 0, f"{exp}: {res.stderr[-2000:]}"
        run_dir = next(p for p in out.iterdir() if exp in p.name)
        result = json.loads((run_dir / "result.json").read_text())
        assert result["verdict"] in ("held", "violated", "unknown"), result.get("verdict")
        assert (run_dir / "report.md").exists()
        assert "--target" in json.loads((run_dir / "config.json").read_text())["reproduce"]
    os.environ[dep.PASSWORD_ENV] = dep.PASSWORD
    # after the partition heals, the old primary is demoted by Sentinel: poll until one primary remains
    primary = wait_until(TargetTopology(load(path)).primary, 30, "a single primary")
    # leave a mess the way an interrupted run would: a toxic, a disabled proxy, a paused node, a lab key
    api_ = f"http://127.0.0.1:{dep.API_PORT}"
    requests.post(f"{api_}/proxies/redis-2/toxics", json={"name": "lab-latency-downstream", "type": "latency",
                                                          "attributes": {"latency": 100}}, timeout=5).raise_for_status()
    requests.post(f"{api_}/proxies/redis-3", json={"enabled": False}, timeout=5).raise_for_status()
    os.kill(int((deployment.root / "sentinel-3.pid").read_text()), 19)
    on_primary = redis.Redis(port=dep._names()[[n for n, _d, _p in dep._names()].index(primary)][1],
                             password=dep.PASSWORD)
    on_primary.set(f"{dep.PREFIX}leftover", 1)
    # someone else's key, written now: a kill of this unpersisted deployment's primary may lose any key (a
    # primary restarted empty before Sentinel noticed), so only the heal's deletions are judged on it
    on_primary.set("app:foreign", b"keep-me")
    res = cli("heal", "--target", str(path))
    assert res.returncode == 0, res.stderr
    proxies = requests.get(f"{api_}/proxies", timeout=5).json()
    assert all(p["enabled"] for p in proxies.values())
    assert all(not p["toxics"] for p in proxies.values())
    topo = TargetTopology(load(path))
    assert all(topo.backend.node_state(n.name) == "running" for n in topo.target.all_nodes)
    r = topo.node_client(topo.primary() or "redis-1", direct=True)
    assert r.keys(f"{dep.PREFIX}*") == []
    assert r.get("app:foreign") == b"keep-me"
