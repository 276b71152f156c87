"""Owned OS processes: start detached, identify safely (pid + start time), signal, wait."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces; fields after the closing parenthesis are fixed
    return raw[raw.rindex(")") + 2:].split()


PID_MAX = 4_194_304  # the kernel's upper bound for pid_max (2**22)


def start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), or None if no such process.
    Together with the pid it names one process: a reused pid has a later start time."""
    if not 0 < pid <= PID_MAX:
        return None
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def cmdline(pid: int) -> str:
    """The process's command line, arguments joined by spaces ('' if gone or a kernel thread)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class OwnedProcess:
    """A process the lab started. ``start_ticks`` guards against pid reuse."""

    pid: int
    start_ticks: int

    @classmethod
    def spawn(cls, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> "OwnedProcess":
        """Start ``argv`` in its own session (it outlives the CLI), output appended to ``log_path``."""
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=env, cwd=cwd)
        fields = _stat_fields(proc.pid)
        return cls(proc.pid, int(fields[19]) if fields else 0)

    def state(self) -> str:
        """'running', 'paused' (SIGSTOP) or 'stopped' (gone, zombie, or pid reused)."""
        fields = _stat_fields(self.pid)
        if fields is None or int(fields[19]) != self.start_ticks:
            return "stopped"
        code = fields[0]
        if code in ("Z", "X", "x"):
            return "stopped"
        if code in ("T", "t"):
            return "paused"
        return "running"

    @classmethod
    def of(cls, pid: int) -> "OwnedProcess | None":
        """The running process ``pid`` as it is now (None if there is none)."""
        ticks = start_ticks(pid)
        return None if ticks is None else cls(pid, ticks)

    def alive(self) -> bool:
        return self.state() != "stopped"

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
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
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._reap()
            if not self.alive():
                return True
            time.sleep(0.02)
        return not self.alive()

    def _reap(self) -> None:
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass

    def to_json(self) -> list[int]:
        return [self.pid, self.start_ticks]

    @classmethod
    def from_json(cls, data: list[int]) -> "OwnedProcess":
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
