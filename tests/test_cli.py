"""The `redislab` command: bad input gets one clear line and a non-zero exit, never a traceback."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LabManager
from topologies import api

pytestmark = pytest.mark.integration
REDISLAB = [sys.executable, "-m", "redislab.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REDISLAB, *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error:")
    for fragment in fragments:
        assert fragment in first


def test_unknown_topology(fresh_lab: LabManager) -> None:
    assert_one_line_error(run("up", "triangle"), "unknown topology 'triangle'", "single, sentinel, cluster")


def test_unknown_backend(fresh_lab: LabManager) -> None:
    assert_one_line_error(run("up", "single", "--backend", "podman"), "unknown backend 'podman'",
                          "auto, docker, local")


def test_port_in_use_names_the_port_and_starts_nothing(fresh_lab: LabManager) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 7001))
        holder.listen()
        assert_one_line_error(run("up", "single", "--backend", "local"), "port 7001", "python")
    assert api.current() is None


def test_docker_backend_without_a_daemon(fresh_lab: LabManager) -> None:
    result = run("up", "single", "--backend", "docker", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert_one_line_error(result, "no Docker daemon answers", "--backend local")
    assert api.current() is None


def test_up_while_another_topology_runs_then_status_and_down(fresh_lab: LabManager) -> None:
    assert run("up", "single", "--backend", "local").returncode == 0
    assert_one_line_error(run("up", "sentinel", "--backend", "local"), "topology single is already up",
                          "redislab down")
    status = json.loads(run("status", "--json").stdout)
    assert status["topology"] == "single" and status["backend"] == "local"
    assert status["password_env"] == "REDISLAB_PASSWORD"
    node = next(n for n in status["nodes"] if n["name"] == "redis-1")
    assert (node["role"], node["port"], node["direct"], node["state"]) == ("primary", 7001, "127.0.0.1:17001",
                                                                           "running")
    assert_one_line_error(run("node", "kill", "redis-9"), "unknown node 'redis-9'", "redis-1")
    assert run("node", "pause", "redis-1").returncode == 0
    assert json.loads(run("status", "--json").stdout)["nodes"][1]["state"] == "paused"
    assert run("node", "resume", "redis-1").returncode == 0
    down = run("down")
    assert down.returncode == 0 and "single (local)" in down.stdout
    assert api.current() is None


def test_env_prints_shell_exports() -> None:
    result = run("env")
    assert result.returncode == 0
    assert result.stdout.startswith("export REDISLAB_PASSWORD=") and "REDISCLI_AUTH=" in result.stdout


def test_run_with_an_out_dir_that_cannot_be_created_fails_before_anything_starts(fresh_lab: LabManager) -> None:
    for out in ("/proc/redislab-no-such-dir/results", "/dev/null/results"):
        result = run("run", "cache-primary-kill", "--backend", "local", "--out", out)
        assert_one_line_error(result, f"--out {out}: cannot create or write there")
        assert len(result.stderr.strip().splitlines()) == 1
        assert api.current() is None


def test_events_streams_a_sentinel_failover_as_json(fresh_lab: LabManager) -> None:
    topo = fresh_lab("sentinel", "local")
    old = topo.primary()
    assert old is not None
    proc = subprocess.Popen([*REDISLAB, "events", "--json", "--duration", "60"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen: list[dict[str, object]] = []
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # every node's role is reported at once
        assert first["kind"] == "topology" and first["event"] == "role"
        topo.kill(old)
        for line in proc.stdout:  # ends at --duration if the failover never shows
            seen.append(json.loads(line))
            if seen[-1]["event"] == "+switch-master":
                break
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    events = [e["event"] for e in seen]
    assert "+sdown" in events and "+odown" in events and events[-1] == "+switch-master", events
    assert any(e["event"] == "role" and e.get("node") == old and e.get("role") == "down" for e in seen), seen
    assert seen[-1]["promoted"] != old and "Traceback" not in err


def test_events_without_a_topology_is_one_line(fresh_lab: LabManager) -> None:
    assert_one_line_error(run("events", "--duration", "1"), "no topology is up")


def test_run_json_prints_the_summary_on_stdout_and_the_line_on_stderr(fresh_lab: LabManager, tmp_path: Path) -> None:
    result = run("run", "counter-kill", "--topology", "single", "--backend", "local", "--cycles", "1",
                 "--duration", "10", "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert summary["experiment"] == "counter-kill" and summary["verdict"] in ("held", "violated", "unknown")
    assert {c["name"] for c in summary["claims"]} >= {"steady_state", "leaderboard_increments"}
    assert summary["figures"]["availability_during"]["n"] == 1
    assert os.path.isfile(summary["files"]["report"]) and "report:" in result.stderr
