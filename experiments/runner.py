"""Run one experiment end to end: topology, scenario, open-loop workload, fault
schedule, server view, topology events, history, checks, report.

Phases: ``warmup`` (excluded from every figure) -> ``baseline`` -> N cycles of
``fault`` (the fault is injected at its start) -> ``recovery`` (healed at its
start). Ctrl-C (or SIGTERM through the CLI) heals, cleans up and still writes a
report marked interrupted. A final read that fails does not abort the run: the
checks that needed it say ``unknown`` and the report names the reason.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import random
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.live import Live
from rich.table import Table

from experiments import generator, observer, registry
from experiments.children import Children
from experiments.gc_pauses import frozen_heap
from experiments.history import HistoryWriter
from experiments.model import PROFILES, Experiment, Profile, RunContext, Scenario, retry_policies
from experiments.priority import requested_nice, schedule_priority, thread_pool
from experiments.report import render_run, write_index
from experiments.target_fit import runnable
from experiments.workload import Slots, WorkloadConfig, WorkloadSummary, run_loop, run_workload
from faults.events import EventLog
from faults.injector import FaultInjector, active_faults, heal_all
from faults.kinds import Fault
from labcommon.errors import LabError, UnknownNameError
from targets import target
from topologies import api
from topologies.spec import Options


@dataclass
class RunRequest:
    experiment: str
    topology: str | None = None
    backend: str = "auto"
    profile: str = "quick"
    duration_s: float | None = None  # total; phases scaled to it
    rate: float | None = None  # ops/s
    seed: int = 1
    out: str = "results"
    progress: bool = True
    cycles: int | None = None  # fault cycles (default: the profile's)
    target: str | None = None  # a target file: run on that existing deployment (targets.target)
    workers: int = 1  # generator processes, each running a share of the clients (experiments.generator)

    def reproduce(self, topology: str, backend: str) -> str:
        where = ["--target", self.target] if self.target else ["--topology", topology, "--backend", backend]
        cmd = ["redislab", "run", self.experiment, *where, "--profile", self.profile, "--seed", str(self.seed)]
        if self.duration_s is not None:
            cmd += ["--duration", f"{self.duration_s:g}"]
        if self.rate is not None:
            cmd += ["--rate", f"{self.rate:g}"]
        if self.cycles is not None:
            cmd += ["--cycles", str(self.cycles)]
        if self.workers != 1:
            cmd += ["--workers", str(self.workers)]
        return shlex.join(cmd)


MAX_CYCLES = 20


def _profile(req: RunRequest, rate_factor: float = 1.0) -> Profile:
    """The profile this request runs: phases scaled to ``--duration``, ``--cycles`` and ``--rate`` applied."""
    if req.profile not in PROFILES:
        raise UnknownNameError("profile", req.profile, list(PROFILES))
    p = PROFILES[req.profile]
    cycles = p.cycles if req.cycles is None else req.cycles
    if not 1 <= cycles <= MAX_CYCLES:
        raise LabError(f"--cycles {cycles} is out of range; accepted: 1..{MAX_CYCLES}")
    p = dataclasses.replace(p, cycles=cycles)
    scale = 1.0
    if req.duration_s is not None:
        if not 3 <= req.duration_s <= 86_400:
            raise LabError(f"--duration {req.duration_s:g} is out of range; accepted: 3..86400 seconds")
        scale = req.duration_s / p.total_s
    rate = p.rate * rate_factor if req.rate is None else req.rate
    if not 1 <= rate <= 100_000:
        raise LabError(f"--rate {rate:g} is out of range; accepted: 1..100000 operations per second")
    return dataclasses.replace(p, warmup_s=p.warmup_s * scale, baseline_s=p.baseline_s * scale,
                               fault_s=p.fault_s * scale, recovery_s=p.recovery_s * scale, rate=rate)


def _check_workers(req: RunRequest, exp: Experiment, profile: Profile) -> None:
    """``--workers``: in range, and more than one only for a scenario that runs in several processes."""
    generator.check_workers(req.workers, profile.clients)
    if req.workers > 1 and not exp.scenario.parallel:
        raise LabError(f"--workers {req.workers}: {exp.name} runs in one generator process (its scenario, "
                       f"{exp.scenario.__name__}, keeps state its operations share in one process)",
                       "drop --workers, or pick an experiment whose scenario is parallel (redislab list)")


T = TypeVar("T")
MAX_IN_FLIGHT = 5000  # operations in flight at most; beyond, the generator drops (and counts) them
FINAL_READ_TIMEOUT_S = 90.0
INTERRUPTED_FINISH_S = 1.0  # after Ctrl-C: the scenario closes its clients, no settle-and-read


class _Progress:
    """Live counters for the progress display."""

    def __init__(self) -> None:
        self.phase = "setup"
        self.fault = "-"
        self.counts = WorkloadSummary()  # filled live by the generator
        self.started = time.monotonic()

    def table(self, exp: Experiment, total_s: float) -> Table:
        t = Table(title=f"{exp.name}: {exp.fault_label}", show_header=False)
        elapsed = time.monotonic() - self.started
        t.add_row("phase", self.phase)
        t.add_row("elapsed", f"{elapsed:5.1f} s of {total_s:.0f} s")
        c = self.counts
        t.add_row("operations", f"{c.launched} sent, {c.launched / max(elapsed, 1e-9):.0f}/s")
        t.add_row("ok / fail / unknown", f"{c.ok} / {c.failed + c.overloaded} / {c.unknown}")
        t.add_row("current fault", self.fault)
        return t


def _topology(req: RunRequest, exp: Experiment) -> tuple[api.Topology, bool]:
    """The topology to run on, and whether this run started it (and must tear it down)."""
    if req.target:
        return _target(req, exp), False
    name = req.topology or exp.topology
    allowed = (exp.topology, *exp.topologies)
    if name not in allowed:
        raise UnknownNameError(f"topology for {exp.name}", name, list(allowed))
    backend = api.resolve_backend(req.backend)
    existing = api.current()
    if exp.topology_options is not None:
        options = dataclasses.replace(Options.from_env(), **exp.topology_options)
        if existing is not None and existing.backend.owns_anything():
            raise LabError(f"{exp.name} starts a {name} topology of its own ({exp.topology_options}); "
                           f"{existing.name} ({existing.backend.name}) is up", "run `redislab down` first")
        return api.up(name, backend=backend, options=options), True
    if existing is not None and existing.backend.owns_anything():
        if existing.name == name and existing.backend.name == backend:
            existing.wait_healthy(timeout_s=30)
            return existing, False
        raise LabError(f"topology {existing.name} ({existing.backend.name}) is up; this run needs {name} ({backend})",
                       "run `redislab down` first")
    return api.up(name, backend=backend), True


def _target(req: RunRequest, exp: Experiment) -> target.TargetTopology:
    """The existing deployment ``req.target`` describes, if ``exp`` can run on it; child processes
    (the observer) open the same target through REDISLAB_TARGET."""
    if req.topology:
        raise LabError("--topology and --target exclude each other", "the target file gives the kind")
    assert req.target is not None  # the caller asks only for a request with a target file
    topo = target.open_target(req.target)
    ok, why = runnable(topo, exp)
    if not ok:
        raise LabError(f"{exp.name} cannot run on target {topo.target.name}: {why}",
                       f"see: redislab list --target {req.target}")
    topo.wait_healthy(timeout_s=30)
    os.environ[target.TARGET_ENV] = str(Path(req.target).resolve())
    return topo


def run_experiment(req: RunRequest, console: Console | None = None) -> Path:
    """Run ``req``; returns the run directory (``result.json``, ``report.md``, ``timeline.png`` ...)."""
    exp = registry.get(req.experiment)
    profile = _profile(req, exp.rate_factor)
    _check_workers(req, exp, profile)
    console = console or Console(stderr=True)
    topo, owned = _topology(req, exp)
    interrupted = False
    run_dir: Path | None = None
    try:
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{exp.name}-{topo.name}-{topo.backend.name}"
        run_dir = Path(req.out) / run_id
        run_dir.mkdir(parents=True, exist_ok=False)
        config: dict[str, Any] = {
            "run_id": run_id, "experiment": exp.name, "summary": exp.summary, "pattern": exp.pattern,
            "topology": topo.name, "backend": topo.backend.name, "profile": req.profile, "seed": req.seed,
            "workload": asdict(profile), "cycles": profile.cycles, "fault": exp.fault_label,
            "hypothesis": exp.hypothesis,
            "checks": exp.checks, "options": exp.options, "reproduce": req.reproduce(topo.name, topo.backend.name),
            "topology_options": asdict(topo.spec.options), "workers": req.workers,
        }
        (run_dir / "config.json").write_text(json.dumps(config, indent=2))
        try:
            run_loop(_run(exp, topo, profile, req, run_dir, run_id, console))
        except KeyboardInterrupt:
            interrupted = True
        except HistoryWriteError:
            with contextlib.suppress(OSError):  # the same disk: a report may not fit either
                render_run(run_dir, reproduce=config["reproduce"], interrupted=True)
            raise
        render_run(run_dir, reproduce=config["reproduce"], interrupted=interrupted or None)
        write_index(req.out)
    finally:
        try:
            if active_faults():
                heal_all(topo)
        finally:
            if isinstance(topo, target.TargetTopology):
                _leave_target(topo)
        if owned:
            api.down()
    if interrupted:
        raise KeyboardInterrupt
    return run_dir


def _leave_target(topo: target.TargetTopology) -> None:
    """Delete the run's keys (everything under the target's key prefix) and forget the target."""
    os.environ.pop(target.TARGET_ENV, None)
    topo.delete_lab_keys()


class HistoryWriteError(LabError):
    """The disk refused the history: the run stopped (healed, cleaned up)."""


async def _run(exp: Experiment, topo: api.Topology, profile: Profile, req: RunRequest, run_dir: Path,
               run_id: str, console: Console) -> None:
    """The run, stopped (healed, cleaned up) as soon as the disk refuses its history."""
    with HistoryWriter(run_dir / "history.jsonl") as writer:
        main, loop = asyncio.current_task(), asyncio.get_running_loop()
        assert main is not None
        writer.on_failure = lambda _exc: loop.call_soon_threadsafe(main.cancel)
        try:
            await _run_with(writer, exp, topo, profile, req, run_dir, run_id, console)
        except asyncio.CancelledError:
            if writer.failed is None:
                raise
    if writer.failed is not None:
        raise HistoryWriteError(f"could not write the history {writer.path} "
                                f"({writer.failed.strerror or writer.failed}):"
                                " the run stopped, its faults healed",
                                "free some space or choose another --out; what was written stays readable")


async def _run_with(writer: HistoryWriter, exp: Experiment, topo: api.Topology, profile: Profile, req: RunRequest,
                    run_dir: Path, run_id: str, console: Console) -> None:
    injector = FaultInjector(topo, EventLog(writer, caption=exp.fault_label))
    children = Children(run_dir, writer)
    ctx = RunContext(topo, run_dir, run_id, writer, req.seed, dict(exp.options), children, random.Random(req.seed))
    scenario: Scenario = exp.scenario(ctx)
    progress = _Progress()
    active: list[Fault] = []
    final_state: dict[str, Any] = {}
    total = profile.total_s

    # Fault plans and injections get a thread of their own: queued behind the workload's own
    # to_thread calls (SQLite writes ...) in the default pool, a fault would land late.
    # at the generator's priority when it may be raised (a thread holding the GIL stalls the loop)
    fault_thread = thread_pool(requested_nice(), max_workers=1, name="fault")

    async def in_fault_thread(fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(fault_thread, functools.partial(fn, *args))

    async def on_phase(window: Any) -> None:
        ctx.phases.append(window)
        progress.phase = window.name + (f" {window.cycle}/{profile.cycles}" if window.cycle else "")
        if window.name == "fault":
            await scenario.before_fault(window.cycle)
            # the plan may talk to Redis (which node is primary now?) or arm a process: never on the loop
            fault = await in_fault_thread(exp.fault, topo, scenario)
            await in_fault_thread(injector.inject, fault)
            active.append(fault)
            progress.fault = repr(fault)
        elif window.name == "recovery" and active:
            await in_fault_thread(injector.heal, active.pop())
            progress.fault = "-"
            await scenario.after_heal()

    workload = WorkloadConfig(rate=profile.rate, clients=profile.clients, seed=req.seed,
                              phases=profile.phases(), max_in_flight=MAX_IN_FLIGHT)
    display = (Live(progress.table(exp, total), console=console, refresh_per_second=4, transient=True)
               if req.progress
               else contextlib.nullcontext())
    with display as live:
        async def refresh() -> None:
            while live is not None:
                live.update(progress.table(exp, total))
                await asyncio.sleep(0.25)

        refresher = asyncio.create_task(refresh())
        interrupted = False
        try:
            # what Redis and the topology say, recorded by a process of its own (no GIL shared with the load)
            await asyncio.to_thread(children.start, "observer", observer.MODULE, {})
            await scenario.setup()
            if ctx.client_policy is not None:
                _record_config(run_dir, client_policy=ctx.client_policy.as_config())
            _record_config(run_dir, pattern_retry=retry_policies(scenario))
            progress.started = time.monotonic()
            # the schedule's thread gets a core before the system under test does (experiments.priority)
            with schedule_priority() as priority, frozen_heap() as gc_pauses:
                _record_config(run_dir, generator_priority=priority.as_config())
                # waiting for one of the app's slots counts as latency (measured from the intended time)
                if req.workers == 1:
                    await run_workload(scenario.op, workload, writer, on_phase=on_phase, summary=progress.counts,
                                       slots=Slots(exp.concurrency))
                else:
                    _, ctx.worker_states = await generator.run_in_processes(
                        children, writer, workload, req.workers, "experiments.generator:scenario_source",
                        {"experiment": exp.name, "options": dict(exp.options), "seed": req.seed, "run_id": run_id,
                         "run_dir": str(run_dir)}, on_phase=on_phase, concurrency=exp.concurrency,
                        summary=progress.counts)
            _record_config(run_dir, generator_gc=gc_pauses.as_config())
            progress.phase = "drain and final read"
        except asyncio.CancelledError:  # Ctrl-C / SIGTERM: heal first, skip the settle-and-read
            interrupted = True
            raise
        finally:
            try:
                while active:
                    await in_fault_thread(injector.heal, active.pop())
                if interrupted:  # the scenario still cleans up; an unsettled read is no evidence: dropped
                    await _final_state(scenario, INTERRUPTED_FINISH_S)
                    final_state = {"final_read_error": "skipped: the run was interrupted (clients closed, no "
                                                       "final read)"}
                else:
                    final_state = await _final_state(scenario)
            finally:
                writer.event("final_state", **final_state)
                await asyncio.to_thread(children.stop_all)
                children.merge_histories(ctx.phase_at)
                fault_thread.shutdown(wait=False)
                refresher.cancel()
                if live is not None:
                    live.update(progress.table(exp, total))


def _record_config(run_dir: Path, **items: Any) -> None:
    """Add ``items`` to the run's config.json (what the scenario decided during its setup)."""
    path = run_dir / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **items}, indent=2))


async def _final_state(scenario: Scenario, timeout_s: float = FINAL_READ_TIMEOUT_S) -> dict[str, Any]:
    """The scenario's final read; one that fails or hangs becomes ``final_read_error`` (the checks
    that needed the read say ``unknown`` and the report names the reason) instead of aborting the run.
    Cut at ``timeout_s``: the scenario's own clean-up (its ``finally`` blocks) still runs."""
    try:
        return await asyncio.wait_for(scenario.finish(), timeout=timeout_s)
    except TimeoutError:
        return {"final_read_error": f"the final read did not finish within {timeout_s:g} s"}
    except Exception as exc:  # noqa: BLE001 - any failure of the final read is reported, never raised
        return {"final_read_error": f"{type(exc).__name__}: {exc}"[:300]}
