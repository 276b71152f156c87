"""Which client processes belong to the lab: the only ones ``client_pause`` / ``client_kill`` signal.

An experiment that starts a client process registers it right after starting it:

    proc = subprocess.Popen([...])
    ownership.register_client(proc.pid, "consumer-1")
    ...
    ownership.unregister_client(proc.pid)        # when it has exited (optional: stale entries are pruned)

The registry (``<lab home>/clients.json``) keeps each process as pid + start time, so a
pid the kernel reused for another program never matches. Anything not registered is
refused unless the user vouches for it (``redislab fault ... --i-own-this-pid``), and
pid 1 and the injecting process itself are refused always.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from labcommon.errors import LabError
from topologies.home import StateFile
from topologies.processes import PID_MAX, OwnedProcess, cmdline, start_ticks

_REGISTRY = "clients.json"
VOUCH_FLAG = "--i-own-this-pid"


@dataclass(frozen=True)
class Client:
    """A registered client process."""

    pid: int
    start_ticks: int
    label: str
    registered_at: float  # wall clock, seconds since the epoch

    def alive(self) -> bool:
        return OwnedProcess(self.pid, self.start_ticks).alive()

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "start_ticks": self.start_ticks, "label": self.label,
                "registered_at": self.registered_at}


def _live(data: dict[str, Any]) -> list[Client]:
    out = []
    for raw in data.get("clients", []):
        try:
            c = Client(int(raw["pid"]), int(raw["start_ticks"]), str(raw["label"]), float(raw["registered_at"]))
        except (KeyError, TypeError, ValueError):
            continue  # a damaged entry is dropped, never trusted
        if c.alive():
            out.append(c)
    return out


def register_client(pid: int, label: str) -> Client:
    """Record ``pid`` (a process this lab just started) as a client the faults may signal."""
    ticks = start_ticks(pid)
    if ticks is None:
        raise LabError(f"cannot register client {label!r}: no process {pid}")
    client = Client(pid, ticks, label, time.time())

    def add(data: dict[str, Any]) -> dict[str, Any]:
        keep = [c.to_json() for c in _live(data) if c.pid != pid]
        return {"clients": [*keep, client.to_json()]}

    StateFile(_REGISTRY).update(add)
    return client


def unregister_client(pid: int) -> None:
    """Forget ``pid`` (and every entry whose process is gone)."""
    StateFile(_REGISTRY).update(lambda data: {"clients": [c.to_json() for c in _live(data) if c.pid != pid]})


def clients() -> list[Client]:
    """The registered clients that are still running (the same process: pid + start time)."""
    return _live(StateFile(_REGISTRY).read() or {})


def registered(pid: int) -> Client | None:
    return next((c for c in clients() if c.pid == pid), None)


def parse_pid_target(kind: str, target: str) -> int:
    """``pid:N`` -> N; anything else is a LabError with the accepted form."""
    body = target[4:] if target.startswith("pid:") else ""
    if not (body.isascii() and body.isdigit()) or not 0 < int(body) <= PID_MAX:
        raise LabError(f"{kind} target {target!r} is not accepted; accepted: pid:N with 1 <= N <= {PID_MAX}",
                       "the pid of a client process the lab started (experiments register theirs)")
    return int(body)


def check_signallable(kind: str, pid: int, vouched: bool) -> OwnedProcess:
    """The process ``pid`` if a client fault may signal it; LabError (nothing signalled) otherwise."""
    if pid == 1:
        raise LabError(f"{kind} refuses pid 1 (init): the lab never signals it")
    if pid == os.getpid():
        raise LabError(f"{kind} cannot signal the process that injects it (pid {pid})")
    proc = OwnedProcess.of(pid)
    if proc is None:
        raise LabError(f"{kind}: no process {pid}", "give the pid of a running client process")
    if registered(pid) is not None or vouched:
        return proc
    known = ", ".join(f"{c.pid} ({c.label})" for c in clients()) or "none"
    what = cmdline(pid)[:60] or "a kernel thread"
    raise LabError(f"{kind}: process {pid} ({what}) is not a client the lab started; refusing to signal it "
                   f"(lab clients now: {known})",
                   f"if you started it yourself and accept the risk, add {VOUCH_FLAG}")
