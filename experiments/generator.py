"""Several generator processes: each runs a share of one open-loop schedule.

One Python process saturates at a few thousand real Redis commands per second
(redis-py's asyncio client costs ~100 µs of CPU a command). With ``workers`` > 1
the run's process starts that many generator processes (``python -m
experiments.generator CONFIG.json``, through :mod:`experiments.children`) and
each runs the operations of its clients (:class:`~experiments.workload.Share`):
the same seed gives the same intended times, clients and op choices whatever the
split. The run's process alone announces the phases, injects and heals the
faults (``on_phase``), and writes ``run_start``/``run_end``.

Clocks: CLOCK_MONOTONIC is shared by every process on the machine, so every
generator stamps its records on the run's own clock (``t0`` from the run) and
starts at the run time the parent hands it (``go`` file), after all are set up.
Each generator writes its own history file; the runner merges them into the run's
history at the end (``Children.merge_histories``).

What an operation runs comes from a *source*, ``"module:function"``: an async
``function(config, writer, share) -> Source`` called in the generator process
(:func:`scenario_source` for an experiment's scenario, the benchmark's own SET).
"""
from __future__ import annotations

import asyncio
import importlib
import json
import math
import os
import random
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.children import Children, config_from_argv, orphaned, ready, watch_parent, write_json_atomically
from experiments.gc_pauses import frozen_heap
from experiments.history import RUN_END, RUN_START, HistoryWriter, PhaseWindow
from experiments.priority import schedule_priority
from experiments.workload import (
    OpFn,
    OpResult,
    PhaseHook,
    Share,
    Slots,
    WorkloadConfig,
    WorkloadSummary,
    announce_phases,
    generate,
    run_loop,
)
from labcommon.errors import LabError

MODULE = "experiments.generator"
MAX_WORKERS = 8
GO_MARGIN_S = 0.3  # the shared start lies this far after every generator reported ready
GO_POLL_S = 0.002  # how often a generator looks for its go file
EXIT_MARGIN_S = 15.0  # beyond schedule + drain, how long the parent waits for a generator to exit


@dataclass
class Source:
    """What one generator process runs: the op function, what to do at the start (the phase
    windows of the run, in run time) and at the end (returns a JSON-able state for the parent)."""

    op: OpFn
    close: Callable[[], Awaitable[dict[str, Any]]]
    on_start: Callable[[list[PhaseWindow]], None] = field(default=lambda phases: None)


SourceFactory = Callable[[dict[str, Any], HistoryWriter, Share], Awaitable[Source]]


def load_source(spec: str) -> SourceFactory:
    """``"module:function"`` -> the source factory it names."""
    module, _, name = spec.partition(":")
    factory: SourceFactory = getattr(importlib.import_module(module), name)
    return factory


def workload_from_json(d: dict[str, Any]) -> WorkloadConfig:
    """Inverse of ``WorkloadConfig.to_json``."""
    return WorkloadConfig(rate=float(d["rate"]), duration=float(d["duration"]), clients=int(d["clients"]),
                          seed=int(d["seed"]), arrivals=d["arrivals"], max_in_flight=int(d["max_in_flight"]),
                          drain_timeout=float(d["drain_timeout"]),
                          phases=tuple((str(n), float(s)) for n, s in d["phases"]))


# -- the run's side ------------------------------------------------------------------------------

def check_workers(workers: int, clients: int) -> None:
    """``workers`` must lie in 1..min(MAX_WORKERS, clients) (a client's operations run in one process)."""
    top = min(MAX_WORKERS, clients)
    if not 1 <= workers <= top:
        raise LabError(f"--workers {workers} is out of range; accepted: 1..{top}",
                       f"at most one generator process per client ({clients} clients) and {MAX_WORKERS} in all")


async def run_in_processes(children: Children, writer: HistoryWriter, config: WorkloadConfig, workers: int,
                           source: str, source_config: dict[str, Any], on_phase: PhaseHook | None = None,
                           concurrency: int | None = None,
                           summary: WorkloadSummary | None = None) -> tuple[WorkloadSummary, list[dict[str, Any]]]:
    """Run ``config`` in ``workers`` generator processes; this process announces the phases
    (``on_phase`` runs here) and writes ``run_start``/``run_end``. ``concurrency``: the
    operations inside their op function at once, over all processes (each gets its share).
    Returns the merged summary and each generator's final state, in share order."""
    check_workers(workers, config.clients)
    run_dir = children.run_dir
    go_file = run_dir / "generators.go"
    go_file.unlink(missing_ok=True)
    names = [f"generator-{k + 1}" for k in range(workers)]
    shared: dict[str, Any] = {"source": source, "source_config": source_config, "go_file": str(go_file),
              "workload": {**config.to_json(), "max_in_flight": max(1, config.max_in_flight // workers)},
              "slots": None if concurrency is None else max(1, math.ceil(concurrency / workers))}
    specs = [(name, MODULE, {**shared, "share": [k, workers], "result_file": str(run_dir / f"{name}.result.json")})
             for k, name in enumerate(names)]
    await asyncio.to_thread(children.start_many, specs)
    offset = writer.clock() + GO_MARGIN_S
    write_json_atomically(go_file, {"offset": offset})
    writer.event(RUN_START, t=offset, workers=workers, **config.to_json())
    announcer = asyncio.get_running_loop().create_task(announce_phases(config, writer, offset, on_phase))
    deadline = offset + config.total_duration + config.drain_timeout + EXIT_MARGIN_S
    try:
        while any(children.procs[n].alive() for n in names):
            if announcer.done() and (failure := announcer.exception()) is not None:
                raise failure
            for name, (_, _, cfg) in zip(names, specs, strict=False):
                child = children.procs[name]
                if not child.alive() and not Path(cfg["result_file"]).exists():  # noqa: ASYNC240 - a stat/read of another process's small file; crashed: stop the run now
                    raise LabError(f"{name} exited (code {child.proc.returncode}) before finishing its share "
                                   "of the load", f"see {child.log}")
            if writer.clock() > deadline:
                raise LabError(f"the generator processes did not finish within {EXIT_MARGIN_S:g} s of the schedule's "
                               "end and drain", f"see {run_dir}/generator-*.log")
            await asyncio.sleep(0.05)
        await announcer
    finally:
        if not announcer.done():
            announcer.cancel()
        await asyncio.gather(announcer, return_exceptions=True)
    merged = summary if summary is not None else WorkloadSummary()
    merged.start = offset
    merged.end = offset
    states: list[dict[str, Any]] = []
    for name, (_, _, cfg) in zip(names, specs, strict=False):
        result = Path(cfg["result_file"])
        if not result.exists():  # noqa: ASYNC240 - a stat/read of another process's small file
            child = children.procs[name]
            raise LabError(f"{name} exited (code {child.proc.returncode}) before finishing its share of the load",
                           f"see {child.log}")
        data = json.loads(result.read_text())  # noqa: ASYNC240 - a stat/read of another process's small file
        merged.merge(data["summary"])
        states.append(data["state"])
    writer.event(RUN_END, workers=workers, **merged.to_json())
    return merged, states


# -- the generator's side ------------------------------------------------------------------------

async def _wait_go(cfg: dict[str, Any]) -> float:
    """The run time every generator starts at, once the parent wrote it."""
    go = Path(cfg["go_file"])
    while not go.exists():  # noqa: ASYNC240 - a stat/read of another process's small file
        if orphaned(cfg):
            raise LabError("the run that started this generator is gone")
        await asyncio.sleep(GO_POLL_S)
    return float(json.loads(go.read_text())["offset"])  # noqa: ASYNC240 - a stat/read of another process's small file


async def generator_main(cfg: dict[str, Any]) -> None:
    """Set the source up, report ready, wait for the go, run this share, write the result.
    SIGTERM (or the parent's death) cancels the share: in-flight operations are recorded
    ``cancelled`` and the history is flushed; no result file is written."""
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main.cancel)
    share = Share(*cfg["share"])
    config = workload_from_json(cfg["workload"])
    slots = Slots(cfg["slots"]) if cfg.get("slots") else None

    watcher = loop.create_task(watch_parent(cfg, main.cancel))
    writer = HistoryWriter(cfg["history"], t0=cfg["t0"])
    # a history the disk refuses stops this share at once (the parent stops the run, naming this process)
    writer.on_failure = lambda _exc: loop.call_soon_threadsafe(main.cancel)
    try:
        source = await load_source(cfg["source"])(cfg["source_config"], writer, share)
        ready(cfg)
        offset = await _wait_go(cfg)
        source.on_start(config.phase_windows(offset))
        # same privileges as the run's process, which records the outcome
        with schedule_priority(), frozen_heap():
            summary = await generate(source.op, config, writer, offset, share=share, slots=slots)
        state = await source.close()
        write_json_atomically(Path(cfg["result_file"]), {"summary": summary.to_wire(), "state": state})
    except asyncio.CancelledError:
        if writer.failed is None:
            raise
    finally:
        watcher.cancel()
        writer.close()
    if writer.failed is not None:
        raise LabError(f"could not write its history {writer.path} ({writer.failed.strerror or writer.failed})",
                       "free some space or choose another --out")


async def scenario_source(config: dict[str, Any], writer: HistoryWriter, share: Share) -> Source:
    """An experiment's scenario, set up for a generator process (``Scenario.worker_setup``)."""
    from experiments import registry
    from experiments.model import RunContext
    from targets import target

    exp = registry.get(config["experiment"])
    topo = target.current()  # a run on a target file names it in REDISLAB_TARGET
    if topo is None:
        raise LabError("generator: no topology is up")
    run_dir = Path(config["run_dir"])
    ctx = RunContext(topo, run_dir, config["run_id"], writer, int(config["seed"]), dict(config["options"]),
                     Children(run_dir, writer), random.Random(int(config["seed"])), share=share)
    scenario = exp.scenario(ctx)
    await scenario.worker_setup()
    return Source(scenario.op, scenario.worker_finish, ctx.phases.extend)


async def noop_source(config: dict[str, Any], writer: HistoryWriter, share: Share) -> Source:
    """Operations that return at once (benchmarks of the generator itself, tests). With
    ``config["draw"]``, each op draws a number from its RNG and records it as its args."""
    draw = bool(config.get("draw"))

    async def op(client: int, rng: random.Random) -> OpResult:
        return OpResult("noop", {"draw": rng.randrange(1 << 30)} if draw else None)

    async def close() -> dict[str, Any]:
        return {"share": [share.index, share.count]}

    return Source(op, close)


def main() -> None:
    cfg = config_from_argv()
    try:
        run_loop(generator_main(cfg))
    except asyncio.CancelledError:
        raise SystemExit(143) from None  # stopped (SIGTERM) or orphaned: the history is flushed
    except LabError as exc:
        raise SystemExit(f"{exc} (pid {os.getpid()})") from None


if __name__ == "__main__":
    main()
