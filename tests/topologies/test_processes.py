"""Owned processes through psutil: pid + start time name one process; port holders without `ss`."""
from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from labcommon.poll import wait_until
from topologies import ports
from topologies.processes import OwnedProcess, start_ticks


def _stat_ticks(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rindex(")") + 2:].split()[19])  # field 22: starttime, clock ticks after boot


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[OwnedProcess]:
    proc = OwnedProcess.spawn(["sh", "-c", "sleep 60 & wait"], tmp_path / "sleeper.log")
    yield proc
    for kid in proc.children():
        kid.terminate(timeout_s=2)
    proc.terminate(timeout_s=2)


def test_start_time_is_the_kernels_clock_ticks_as_the_records_keep_them(sleeper: OwnedProcess) -> None:
    assert sleeper.start_ticks == _stat_ticks(sleeper.pid) == start_ticks(sleeper.pid)
    assert start_ticks(os.getpid()) == _stat_ticks(os.getpid())
    assert start_ticks(0) is None and start_ticks(-5) is None


def test_state_follows_the_process_and_a_reused_pid_is_never_signalled(sleeper: OwnedProcess) -> None:
    assert sleeper.state() == "running"
    impostor = OwnedProcess(sleeper.pid, sleeper.start_ticks + 1)  # the same pid, another start time
    assert impostor.state() == "stopped"
    impostor.signal(signal.SIGKILL)
    assert sleeper.state() == "running"  # untouched
    sleeper.signal(signal.SIGSTOP)
    wait_until(lambda: sleeper.state() == "paused", 5, "SIGSTOP seen")
    sleeper.signal(signal.SIGCONT)
    wait_until(lambda: sleeper.state() == "running", 5, "SIGCONT seen")
    sleeper.terminate(timeout_s=2)
    assert sleeper.state() == "stopped"


def test_children_are_the_live_descendants_named_by_pid_and_start_time(sleeper: OwnedProcess) -> None:
    def sleeping() -> list[OwnedProcess] | None:  # the forked child is `sh` until it execs `sleep`
        kids = sleeper.children()
        return kids if kids and Path(f"/proc/{kids[0].pid}/cmdline").read_bytes().startswith(b"sleep") else None

    kids = wait_until(sleeping, 5, "the shell's sleep")
    assert [k.start_ticks for k in kids] == [_stat_ticks(k.pid) for k in kids]
    kids[0].terminate(timeout_s=2)
    assert sleeper.children() == []


def test_the_holder_of_a_port_is_named_without_ss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no `ss` (nor anything else) to run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert f"(pid {os.getpid()})" in ports.holder(port)
    assert ports.holder(port) == ""
