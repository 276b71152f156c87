"""The experiment's child processes: one harness for every process a run starts beside
its load generator (queue consumers, the lock's slow holder, the generator processes,
the observer that samples the topology).

A child is ``python -m MODULE CONFIG.json``. Its config always carries ``history`` (its
own history file, flushed per record, so a SIGKILL loses nothing already recorded),
``t0`` (the run's clock: CLOCK_MONOTONIC is shared by every process), ``ready_file``
(written by the child once it serves), ``reply_file`` (its answer to the parent's
request) and ``parent`` (the run's pid).

The parent's side (:class:`Children`): start with a deadline on the ready file, ask a
child something (:meth:`Child.request`: SIGUSR1, then its reply), stop with SIGCONT +
SIGTERM (after a deadline SIGABRT, which makes the child's ``faulthandler`` write every
thread's stack into its log, then SIGKILL), ``worker`` start/exit events (``hung`` when
it had to be aborted), and every child's history merged into the run's at the end.

The child's side: :func:`child_main` runs a child that serves until it is stopped (the
queue consumers, the lock's slow holder) with a :class:`ChildProcess`: its history, the
running topology's clients, ``stop`` (SIGTERM, or the run that started it is gone),
``requested`` (SIGUSR1), ``ready()`` and ``reply()``. The observer and the generators
use the same pieces (:func:`config_from_argv`, :func:`ready`, :func:`watch_parent`)
around loops of their own.
"""
from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.history import HistoryWriter, iter_records
from experiments.workload import run_loop
from faults import ownership
from labcommon.errors import LabError, NotReadyError
from labcommon.poll import wait_until

if TYPE_CHECKING:
    from topologies.clients import ClientPolicy

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
DUMP_TIMEOUT_S = 2.0  # s a hung child gets to write its threads' stacks (SIGABRT) before SIGKILL
REQUEST_SIGNAL = signal.SIGUSR1  # the parent's request to a child (ChildProcess.requested)
REPLY_POLL_S = 0.002  # s between looks for a child's reply (the lock holder's: the pause must land on time)
PARENT_POLL_S = 0.5  # s between a child's checks that the run that started it is still there


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    history: Path
    log: Path
    reply_file: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, timeout_s: float) -> dict[str, Any] | None:
        """Ask the child (``REQUEST_SIGNAL`` sets its ``ChildProcess.requested``) and wait, at most
        ``timeout_s`` seconds and while it lives, for its :meth:`ChildProcess.reply`. None when
        no reply came. Blocking: call it from a thread."""
        self.reply_file.unlink(missing_ok=True)
        self.proc.send_signal(REQUEST_SIGNAL)
        with contextlib.suppress(NotReadyError):
            wait_until(lambda: self.reply_file.exists() or not self.alive(), timeout_s, f"{self.name}'s reply",
                       interval_s=REPLY_POLL_S)
        if not self.reply_file.exists():
            return None
        answer: dict[str, Any] = json.loads(self.reply_file.read_text())
        return answer


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
               "ready_file": str(d / f"{name}.ready"), "reply_file": str(d / f"{name}.reply")}
        path = d / f"{name}.json"
        path.write_text(json.dumps(cfg))
        log = d / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", module, str(path)], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        child = Child(name, proc, Path(cfg["history"]), log, Path(cfg["reply_file"]))
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
        hung = False
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            hung = True  # its stacks go to its log (faulthandler on SIGABRT), then it is killed
            proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(DUMP_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            ownership.unregister_client(proc.pid)
            extra: dict[str, Any] = {"hung": True, "log": child.log.name} if hung else {}
            self.writer.event("worker", name=name, pid=proc.pid, action="exit", code=proc.returncode, **extra)

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
    """The child's config (its one argument); also arms ``faulthandler``, so a child that hangs
    and is aborted (:meth:`Children.stop`) leaves every thread's stack in its log."""
    faulthandler.enable(all_threads=True)
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


async def watch_parent(cfg: dict[str, Any], on_gone: Callable[[], object]) -> None:
    """Call ``on_gone`` once the run that started this child is gone (checked every
    ``PARENT_POLL_S``); cancel it to stop watching."""
    while not orphaned(cfg):
        await asyncio.sleep(PARENT_POLL_S)
    on_gone()


def write_json_atomically(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a rename: whoever waits for the file never
    reads half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, default=repr))
    tmp.rename(path)


class ChildProcess:
    """A serving child's side of the harness (see :func:`child_main`). ``role`` names it in
    its messages."""

    def __init__(self, cfg: dict[str, Any], role: str) -> None:
        self.cfg = cfg
        self.role = role
        self.writer = child_writer(cfg)
        self.stop = asyncio.Event()  # SIGTERM, or the run that started this child is gone
        self.requested = asyncio.Event()  # the parent asked (REQUEST_SIGNAL); clear it when taken
        self._clients: list[Any] = []

    async def client(self, policy: ClientPolicy) -> Any:
        """The running topology's app-facing asyncio client under ``policy`` (redlock: a list,
        one per node), initialised; closed when the child exits."""
        # imported here: the generator processes, which need no topology client, start without them
        from patterns.common import prepare_client
        from topologies import api

        topo = api.current()
        if topo is None:
            raise SystemExit(f"{self.role}: no topology is up")
        client = topo.client(asyncio=True, policy=policy)
        ones = client if isinstance(client, list) else [client]
        self._clients.extend(ones)
        for one in ones:
            await prepare_client(one)
        return client

    def ready(self) -> None:
        """Tell the parent this child serves (its start returns)."""
        ready(self.cfg)

    async def next_request(self) -> bool:
        """Wait until the parent asks (True; ``requested`` is cleared) or this child is
        stopped (False)."""
        while not self.stop.is_set():
            if self.requested.is_set():
                self.requested.clear()
                return True
            waiters = [asyncio.ensure_future(e.wait()) for e in (self.requested, self.stop)]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
        return False

    def reply(self, answer: dict[str, Any]) -> None:
        """Answer the parent's request (what :meth:`Child.request` returns)."""
        write_json_atomically(Path(self.cfg["reply_file"]), answer)

    async def close(self) -> None:
        """Close the history and the clients (at exit)."""
        self.writer.close()
        await asyncio.gather(*(c.aclose() for c in self._clients), return_exceptions=True)


def child_main(role: str, serve: Callable[[ChildProcess], Awaitable[None]]) -> None:
    """The entry point of a child that serves until stopped (``python -m MODULE CONFIG.json``):
    run ``serve(child)`` on the lab's event loop. ``serve`` calls ``child.ready()`` once it
    serves and returns once ``child.stop`` is set (SIGTERM, or the run is gone); the history
    and the clients are closed however it ends."""
    run_loop(_serve(config_from_argv(), role, serve))


async def _serve(cfg: dict[str, Any], role: str, serve: Callable[[ChildProcess], Awaitable[None]]) -> None:
    child = ChildProcess(cfg, role)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, child.stop.set)
    loop.add_signal_handler(REQUEST_SIGNAL, child.requested.set)
    watcher = loop.create_task(watch_parent(cfg, child.stop.set))
    try:
        await serve(child)
    finally:
        watcher.cancel()
        await child.close()
