"""Owned OS processes: start detached, identify safely (pid + start time), signal, wait.

Processes are read through psutil. A process is named by its pid and its start time in clock
ticks after boot (``/proc/<pid>/stat`` field 22, as recorded in the lab's JSON records): psutil's
``create_time()`` is that value divided by the tick rate plus the boot time, so it is converted back.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

from labcommon.errors import NotReadyError
from labcommon.poll import wait_until

PID_MAX = 4_194_304  # the kernel's upper bound for pid_max (2**22)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # start times are counted in these (ticks per second)
_GONE = (psutil.NoSuchProcess, psutil.AccessDenied)  # ZombieProcess is a NoSuchProcess


def process(pid: int) -> psutil.Process | None:
    """psutil's handle on process ``pid`` (None if there is none, or the pid is out of range)."""
    if not 0 < pid <= PID_MAX:
        return None
    try:
        return psutil.Process(pid)
    except _GONE:
        return None


def _ticks(proc: psutil.Process) -> int:
    """Start time of ``proc`` in clock ticks after boot (raises psutil.NoSuchProcess when gone)."""
    return round((proc.create_time() - psutil.boot_time()) * CLOCK_TICKS)


def start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), or None if no such process.
    Together with the pid it names one process: a reused pid has a later start time."""
    proc = process(pid)
    try:
        return None if proc is None else _ticks(proc)
    except _GONE:
        return None


def cmdline(pid: int) -> str:
    """The process's command line, arguments joined by spaces ('' if gone or a kernel thread)."""
    proc = process(pid)
    try:
        return "" if proc is None else " ".join(proc.cmdline()).strip()
    except _GONE:
        return ""


@dataclass(frozen=True)
class OwnedProcess:
    """A process the lab started. ``start_ticks`` guards against pid reuse."""

    pid: int
    start_ticks: int

    @classmethod
    def spawn(cls, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> OwnedProcess:
        """Start ``argv`` in its own session (it outlives the CLI), output appended to ``log_path``."""
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=env, cwd=cwd)
        ticks = start_ticks(proc.pid)
        return cls(proc.pid, 0 if ticks is None else ticks)

    def _verified(self) -> psutil.Process | None:
        """psutil's handle on this very process (same pid and start time), None if it is gone or the
        pid now names another process. The handle checks the identity again before it signals."""
        proc = process(self.pid)
        try:
            return proc if proc is not None and _ticks(proc) == self.start_ticks else None
        except _GONE:
            return None

    def state(self) -> str:
        """'running', 'paused' (SIGSTOP) or 'stopped' (gone, zombie, or pid reused)."""
        proc = self._verified()
        try:
            status = "gone" if proc is None else proc.status()
        except _GONE:
            return "stopped"
        if status in ("gone", psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return "stopped"
        if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
            return "paused"
        return "running"

    def children(self) -> list[OwnedProcess]:
        """This process's live descendants, each named by pid + start time ([] when it is gone)."""
        proc = self._verified()
        try:
            kids = [] if proc is None else proc.children(recursive=True)
        except _GONE:
            return []
        found = [OwnedProcess.of(kid.pid) for kid in kids]
        return [k for k in found if k is not None and k.alive()]

    @classmethod
    def of(cls, pid: int) -> OwnedProcess | None:
        """The running process ``pid`` as it is now (None if there is none)."""
        ticks = start_ticks(pid)
        return None if ticks is None else cls(pid, ticks)

    def alive(self) -> bool:
        return self.state() != "stopped"

    def signal(self, sig: int) -> None:
        """Send ``sig`` if this very process (pid + start time) still runs; otherwise do nothing."""
        proc = self._verified()
        if proc is None or not self.alive():
            return
        try:
            proc.send_signal(sig)  # psutil refuses when the pid was reused since ``_verified``
        except _GONE:
            pass

    def terminate(self, timeout_s: float = 5.0) -> None:
        """SIGCONT + SIGTERM, then SIGKILL after ``timeout_s`` seconds; returns when gone."""
        if not self.alive():
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if not self.wait_gone(timeout_s):
            self.signal(signal.SIGKILL)
            self.wait_gone(5.0)

    def wait_gone(self, timeout_s: float) -> bool:
        """True once the process is gone (reaped if it is our child), False if it still runs
        after ``timeout_s`` seconds."""

        def gone() -> bool:
            self._reap()
            return not self.alive()
        try:
            return wait_until(gone, timeout_s, f"pid {self.pid} gone", interval_s=0.02)
        except NotReadyError:
            return False

    def _reap(self) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, os.WNOHANG)

    def to_json(self) -> list[int]:
        return [self.pid, self.start_ticks]

    @classmethod
    def from_json(cls, data: list[int]) -> OwnedProcess:
        return cls(int(data[0]), int(data[1]))


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
