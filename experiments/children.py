"""The experiment's child processes: one harness for every process a run starts beside
its load generator (queue consumers, the lock's slow holder, the observer that samples
the topology).

A child is ``python -m MODULE CONFIG.json``. Its config always carries ``history`` (its
own history file, flushed per record, so a SIGKILL loses nothing already recorded),
``t0`` (the run's clock: CLOCK_MONOTONIC is shared by every process), ``ready_file``
(written by the child once it serves) and ``parent`` (the run's pid). The parent waits
for the ready file with a deadline, stops children with SIGCONT + SIGTERM (SIGKILL
after a deadline), records ``worker`` start/exit events, and merges every child's
history into the run's history at the end.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.history import HistoryWriter, iter_records
from faults import ownership
from labcommon.errors import LabError
from labcommon.poll import wait_until

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    history: Path
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Children:
    """The run's child processes, by name (in start order)."""

    run_dir: Path
    writer: HistoryWriter
    procs: dict[str, Child] = field(default_factory=dict)

    def start(self, name: str, module: str, config: dict[str, Any], timeout_s: float = START_TIMEOUT_S) -> Child:
        """Start ``python -m module`` with ``config`` (plus the harness keys) and wait until it is ready."""
        return self.start_many([(name, module, config)], timeout_s)[0]

    def start_many(self, specs: list[tuple[str, str, dict[str, Any]]],
                   timeout_s: float = START_TIMEOUT_S) -> list[Child]:
        """Start every ``(name, module, config)`` at once, then wait until all are ready (they
        set up in parallel). If one fails to start, the ones started here are stopped."""
        started: list[tuple[Child, Path]] = []
        try:
            for name, module, config in specs:
                started.append(self._spawn(name, module, config))
            for child, ready_file in started:
                proc = child.proc
                wait_until(lambda: ready_file.exists() or proc.poll() is not None,  # noqa: B023 - polled in this iteration
                           timeout_s, child.name)
                if proc.poll() is not None:
                    raise LabError(f"{child.name} exited at start (code {proc.returncode})", f"see {child.log}")
        except BaseException:
            for child, _ in started:
                self.stop(child.name)
            raise
        for child, _ in started:
            self.writer.event("worker", name=child.name, pid=child.pid, action="start")
        return [child for child, _ in started]

    def _spawn(self, name: str, module: str, config: dict[str, Any]) -> tuple[Child, Path]:
        d = self.run_dir
        cfg = {**config, "history": str(d / f"{name}.jsonl"), "t0": self.writer.t0, "parent": os.getpid(),
               "ready_file": str(d / f"{name}.ready")}
        path = d / f"{name}.json"
        path.write_text(json.dumps(cfg))
        log = d / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", module, str(path)], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        child = Child(name, proc, Path(cfg["history"]), log)
        self.procs[name] = child
        ownership.register_client(proc.pid, name)  # client_pause/client_kill signal only registered clients
        return child, Path(cfg["ready_file"])

    def live(self) -> list[Child]:
        return [c for c in self.procs.values() if c.alive()]

    def stop(self, name: str, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Resume (in case it is paused), SIGTERM, wait; SIGKILL if it hangs. Idempotent."""
        child = self.procs.get(name)
        if child is None or child.proc.returncode is not None:
            return
        proc = child.proc
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            ownership.unregister_client(proc.pid)
            self.writer.event("worker", name=name, pid=proc.pid, action="exit", code=proc.returncode)

    def stop_all(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop every child: SIGTERM all first, then wait for each (they shut down in parallel)."""
        for c in self.live():
            c.proc.send_signal(signal.SIGCONT)
            c.proc.send_signal(signal.SIGTERM)
        for name in list(self.procs):
            self.stop(name, timeout_s)

    def merge_histories(self, phase_at: Callable[[float], str | None]) -> None:
        """Append every child's records to the run's history (an op without a phase gets the
        phase its start fell in), then remove the child files."""
        for c in self.procs.values():
            if not c.history.exists():
                continue
            for record in iter_records(c.history):
                kind = record.get("type")
                if kind == "op" and record.get("phase") is None:
                    record["phase"] = phase_at(float(record["start"]))
                if kind in ("op", "event"):
                    self.writer.write_record(record)
            c.history.unlink()


# -- the child's side --------------------------------------------------------------------------------

def config_from_argv() -> dict[str, Any]:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: python -m {sys.argv[0]} CONFIG.json")
    cfg: dict[str, Any] = json.loads(Path(sys.argv[1]).read_text())
    return cfg


def child_writer(cfg: dict[str, Any]) -> HistoryWriter:
    """The child's history writer on the run's clock, flushed per record."""
    return HistoryWriter(cfg["history"], flush_every=1, t0=cfg["t0"])


def ready(cfg: dict[str, Any]) -> None:
    """Tell the parent this child serves."""
    Path(cfg["ready_file"]).write_text(str(os.getpid()))


def orphaned(cfg: dict[str, Any]) -> bool:
    """True once the run that started this child is gone."""
    return os.getppid() != cfg["parent"]


async def serve_until_stopped(cfg: dict[str, Any], work: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``work(stop)`` with SIGTERM (or the parent's death) setting ``stop``; ``work``
    calls :func:`ready` once it serves."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def watch_parent() -> None:
        while not stop.is_set():
            if orphaned(cfg):
                stop.set()
            await asyncio.sleep(0.5)

    watcher = asyncio.ensure_future(watch_parent())
    try:
        await work(stop)
    finally:
        watcher.cancel()
