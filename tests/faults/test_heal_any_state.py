"""`redislab heal` and `down` from any state: no topology, lost records, Toxiproxy dead, daemon restarted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from faults import kinds, netfilter
from faults.injector import active_faults
from faults.toxiproxy_api import ToxiproxyAPI, ToxiproxyHung
from labcommon.poll import wait_until
from tests.conftest import LabManager
from topologies import api, dockerd
from topologies.compose_gen import container_name, project_name
from topologies.home import StateFile, lab_home
from topologies.processes import OwnedProcess

pytestmark = pytest.mark.integration
REDISLAB = [sys.executable, "-m", "redislab.cli"]
ROOT = os.geteuid() == 0


def lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REDISLAB, *args], capture_output=True, text=True, timeout=240)


def _state(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2]


def _serves(topo: api.Topology) -> bool:
    with topo.client(socket_timeout=1, socket_connect_timeout=1) as c:
        return bool(c.ping())


def _assert_clean(topo: api.Topology) -> None:
    tox = ToxiproxyAPI()
    assert not any(tox.toxics().values()) and tox.disabled() == []
    if ROOT:
        assert netfilter.Netfilter(topo.backend.netns_pid()).rule_count() == 0
    assert active_faults() == []
    assert all(topo.backend.node_state(n.name) == "running" for n in topo.spec.nodes)


def test_heal_with_no_topology_clears_stale_records_and_signals_nothing(fresh_lab: LabManager) -> None:
    """Records of a run whose topology is gone; the recorded pid now names another process."""
    other = subprocess.Popen(["sleep", "300"])
    try:
        other.send_signal(signal.SIGSTOP)  # the test's own process, stopped by the test
        wait_until(lambda: _state(other.pid) == "T", 5, "sleep stopped")
        ticks = OwnedProcess.of(other.pid).start_ticks  # type: ignore[union-attr]  # the process was just started: it exists
        StateFile("faults.json").write({"active": [
            {"kind": "client_pause", "target": f"pid:{other.pid}", "params": {},
             "saved": {"start_ticks": ticks - 1}},  # pid reused since: another process now
            {"kind": "latency", "target": "redis-1", "params": {"latency_ms": 300, "jitter_ms": 0,
                                                                 "direction": "downstream"}, "saved": {}},
            {"kind": "partition", "target": "redis-1", "params": {}, "saved": {"rules": 12}},
            {"kind": "no-such-fault", "target": "?", "params": {}},
        ]})
        if ROOT:
            netfilter.Netfilter().apply([["-p", "tcp", "--dport", "7001", "-j", "DROP"]])
        result = lab_cli("heal")
        assert result.returncode == 0, result.stderr
        assert "cleared" in result.stdout and "Traceback" not in result.stderr
        assert active_faults() == []
        assert _state(other.pid) == "T"  # not the process the record named: never signalled
        if ROOT:
            assert not netfilter.Netfilter().chain_exists()
            assert "removed 1 partition rules (this machine)" in result.stdout
        again = lab_cli("heal")
        assert again.returncode == 0 and "nothing to heal" in again.stdout
    finally:
        other.kill()
        other.wait()
        netfilter.Netfilter().heal()


def test_heal_resumes_paused_leftovers_when_the_topology_record_is_lost(fresh_lab: LabManager, backend: str) -> None:
    topo = fresh_lab("single", backend)
    topo.pause("redis-1")
    StateFile("topology.json").clear()  # the record is lost: what remains are leftovers
    try:
        result = lab_cli("heal")
        assert result.returncode == 0, result.stderr
        assert "resumed" in result.stdout
        assert topo.backend.node_state("redis-1") == "running"
    finally:
        assert lab_cli("down", "--all").returncode == 0
    _assert_nothing_left(topo)


def _kill_toxiproxy(topo: api.Topology) -> None:
    if topo.backend.name == "local":
        proc = topo.backend.procs["toxiproxy"]  # type: ignore[attr-defined]  # the local backend (LocalBackend)
        proc.signal(signal.SIGKILL)
        proc.wait_gone(5)
    else:
        subprocess.run(["docker", "kill", container_name(topo.name, "toxiproxy")], check=True, capture_output=True)
    wait_until(lambda: topo.backend.node_state("toxiproxy") == "stopped", 10, "Toxiproxy dead")


def test_heal_and_down_work_when_toxiproxy_died_mid_fault(fresh_lab: LabManager, backend: str) -> None:
    topo = fresh_lab("single", backend)
    assert lab_cli("fault", "latency", "--target", "redis-1", "latency_ms=300").returncode == 0
    if ROOT:
        assert lab_cli("fault", "partition", "--target", "redis-1|@clients").returncode == 0
    _kill_toxiproxy(topo)
    result = lab_cli("heal")
    assert result.returncode == 0, result.stderr
    assert "restarted" in result.stdout and "Toxiproxy" in result.stdout
    wait_until(lambda: _serves(topo), 30, "the topology serves again after heal")
    _assert_clean(topo)
    # and once more with Toxiproxy dead, `down` removes everything
    _kill_toxiproxy(topo)
    down = lab_cli("down")
    assert down.returncode == 0, down.stderr
    _assert_nothing_left(topo)


def test_a_hung_toxic_removal_is_healed_by_restarting_the_labs_toxiproxy(fresh_lab: LabManager, backend: str) -> None:
    """Toxiproxy's API can hang removing a toxic (Shopify/toxiproxy issue 558); a stopped Toxiproxy
    hangs the same way (the kernel accepts, nobody answers). The heal must still leave no toxic."""
    topo = fresh_lab("single", backend)
    fault = kinds.make("latency", "redis-1", latency_ms=300)
    fault.inject(topo)
    if backend == "local":
        topo.backend.procs["toxiproxy"].signal(signal.SIGSTOP)  # type: ignore[attr-defined]  # a LocalBackend
    else:
        topo.backend.pause("toxiproxy")
    with pytest.raises(ToxiproxyHung):
        ToxiproxyAPI().toxics()
    fault.heal(topo)
    wait_until(lambda: _serves(topo), 30, "the topology serves again after the heal")
    assert not any(ToxiproxyAPI().toxics().values())


def _assert_nothing_left(topo: api.Topology) -> None:
    assert api.current() is None
    if topo.backend.name == "local":
        assert not topo.backend.owns_anything() and not (lab_home() / "run" / topo.name).exists()
        return
    dockerd.ensure_running()  # `down` stops a daemon the lab started when only its containers were on it
    for kind in ("ps -aq", "network ls -q", "volume ls -q"):
        label = f"label=com.docker.compose.project={project_name(topo.name)}"
        out = subprocess.run(["docker", *kind.split(), "--filter", label],
                             capture_output=True, text=True).stdout
        assert out.strip() == "", f"docker {kind} still lists {out!r}"


@pytest.mark.docker
def test_heal_and_down_after_the_docker_daemon_restarted(fresh_lab: LabManager, backend: str) -> None:
    if backend != "docker":
        pytest.skip("Docker only")
    topo = fresh_lab("single", "docker")
    if not dockerd.owned():
        pytest.skip("the Docker daemon was not started by the lab: tests never restart someone else's")
    assert lab_cli("fault", "pause", "--target", "redis-1").returncode == 0
    assert dockerd.stop_if_owned().stopped
    assert dockerd.ensure_running()
    result = lab_cli("heal")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: _serves(topo), 60, "the topology serves again after heal")
    _assert_clean(topo)
    down = lab_cli("down")
    assert down.returncode == 0, down.stderr
    _assert_nothing_left(topo)
