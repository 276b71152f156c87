"""client_pause / client_kill signal only the lab's own client processes (issue 11)."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults import kinds, ownership
from faults.injector import FaultInjector, active_faults, heal_all
from labcommon.errors import LabError
from labcommon.poll import wait_until
from tests.conftest import LabManager
from topologies import api
from topologies.home import lab_home
from topologies.spec import build_spec

REDISLAB = [sys.executable, "-m", "redislab.cli"]


def _state(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2]


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process the test started and the lab did not: the lab must not touch it."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()
    ownership.unregister_client(proc.pid)


def _topo() -> api.Topology:
    """A Topology object for validation only (client faults never touch the topology)."""
    spec = build_spec("single")
    return api.Topology(spec, None, "pw")  # type: ignore[arg-type]  # clients only: no backend


def test_an_unregistered_pid_is_refused_and_nothing_is_signalled(sleeper: subprocess.Popen[bytes]) -> None:
    for kind in ("client_pause", "client_kill"):
        with pytest.raises(LabError, match=f"process {sleeper.pid} .*is not a client the lab started"):
            kinds.make(kind, f"pid:{sleeper.pid}").validate(_topo())
    # neither stopped (T) nor killed (Z, X); under load a just-started sleep may be in D or R
    assert _state(sleeper.pid) not in ("T", "t", "Z", "X") and sleeper.poll() is None


def test_pid_1_and_the_injector_itself_are_refused_even_when_vouched_for() -> None:
    import os
    for pid, fragment in ((1, "refuses pid 1"), (os.getpid(), "process that injects it")):
        f = kinds.make("client_pause", f"pid:{pid}")
        assert isinstance(f, kinds.ClientPause)
        f.vouched = True
        with pytest.raises(LabError, match=fragment):
            f.validate(_topo())


@pytest.mark.parametrize("target", ["pid:", "pid:0", "pid:-3", "pid:abc", "pid:1e3", "pid:99999999999999999999",
                                    "1234", "pid: 12", "pid:١٢", ""])
def test_malformed_pid_targets_are_one_clear_error(target: str) -> None:
    with pytest.raises(LabError, match="accepted: pid:N"):
        kinds.make("client_pause", target).validate(_topo())


def test_a_registered_client_is_accepted_and_forgotten_when_its_pid_is_reused(sleeper: subprocess.Popen[bytes]) -> None:
    ownership.register_client(sleeper.pid, "test-client")
    assert ownership.registered(sleeper.pid) is not None
    kinds.make("client_pause", f"pid:{sleeper.pid}").validate(_topo())
    # the same pid with another start time is another process: never trusted
    path = lab_home() / "clients.json"
    data = json.loads(path.read_text())
    for c in data["clients"]:
        if c["pid"] == sleeper.pid:
            c["start_ticks"] += 1
    path.write_text(json.dumps(data))
    assert ownership.registered(sleeper.pid) is None
    with pytest.raises(LabError, match="not a client the lab started"):
        kinds.make("client_pause", f"pid:{sleeper.pid}").validate(_topo())


def test_heal_signals_only_the_process_it_paused(sleeper: subprocess.Popen[bytes]) -> None:
    """A record whose pid now belongs to another process (start time differs) is not signalled."""
    ownership.register_client(sleeper.pid, "test-client")
    f = kinds.make("client_pause", f"pid:{sleeper.pid}")
    f.validate(_topo())
    f.inject(_topo())
    wait_until(lambda: _state(sleeper.pid) == "T", 5, "client stopped")
    stale = kinds.from_record({**f.record(), "saved": {"start_ticks": f.saved["start_ticks"] + 1}})
    stale.heal(None)  # type: ignore[arg-type]  # client faults never touch the topology
    assert _state(sleeper.pid) == "T"  # not ours any more: left alone
    f.heal(None)  # type: ignore[arg-type]  # client faults never touch the topology
    wait_until(lambda: _state(sleeper.pid) in ("S", "R"), 5, "client resumed")


@pytest.mark.integration
def test_cli_refuses_a_foreign_pid_and_accepts_it_when_the_user_vouches(lab: LabManager,
                                                                        sleeper: subprocess.Popen[bytes]) -> None:
    topo = lab("single", "local")
    for args in (["client_pause", "--target", f"pid:{sleeper.pid}"],
                 ["client_kill", "--target", f"pid:{sleeper.pid}"],
                 ["client_pause", "--target", "pid:1"]):
        result = subprocess.run([*REDISLAB, "fault", *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error:")
    assert sleeper.poll() is None and _state(sleeper.pid) in ("S", "R")
    assert active_faults() == []
    result = subprocess.run([*REDISLAB, "fault", "client_pause", "--target", f"pid:{sleeper.pid}",
                             "--i-own-this-pid"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    wait_until(lambda: _state(sleeper.pid) == "T", 5, "vouched-for process stopped")
    assert subprocess.run([*REDISLAB, "heal"], capture_output=True, timeout=60).returncode == 0
    wait_until(lambda: _state(sleeper.pid) in ("S", "R"), 5, "vouched-for process resumed")
    heal_all(topo)


@pytest.mark.integration
def test_the_injector_pauses_a_registered_client(lab: LabManager, sleeper: subprocess.Popen[bytes]) -> None:
    topo = lab("single", "local")
    ownership.register_client(sleeper.pid, "test-client")
    with FaultInjector(topo).active(kinds.make("client_pause", f"pid:{sleeper.pid}")):
        wait_until(lambda: _state(sleeper.pid) == "T", 5, "client stopped")
    wait_until(lambda: _state(sleeper.pid) in ("S", "R"), 5, "client resumed")
