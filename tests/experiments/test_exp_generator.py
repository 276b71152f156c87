"""Several generator processes (experiments.generator): the same schedule and op choices as
one process, split by client, histories merged on the run's clock. No Redis: a no-op source."""
import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from experiments.children import Children
from experiments.generator import Source, check_workers, run_in_processes
from experiments.history import PHASE, RUN_END, RUN_START, History, HistoryWriter, read_history
from experiments.workload import OpResult, Share, WorkloadConfig, WorkloadSummary, plan, run_workload
from labcommon.errors import LabError

PHASES = (("warmup", 0.2), ("baseline", 0.3), ("fault", 0.3), ("recovery", 0.3))


def _signature(h: History) -> list[tuple[float, int, str, Any, str | None]]:
    t_start = h.events_of(RUN_START)[0].t  # intended times are offset by the start
    return sorted((round(o.intended - t_start, 6), o.client, o.op, o.args["draw"], o.phase) for o in h.ops)


def _parallel(tmp_path: Path, workers: int, seen_phases: list[str]
              ) -> tuple[WorkloadSummary, list[dict[str, Any]], dict[int, set[int]], History]:
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as w:
        children = Children(tmp_path, w)

        async def main() -> tuple[WorkloadSummary, list[dict[str, Any]]]:
            try:
                return await run_in_processes(children, w, WorkloadConfig(rate=400, clients=4, seed=5, phases=PHASES),
                                              workers, "experiments.generator:noop_source", {"draw": True},
                                              on_phase=lambda win: seen_phases.append(win.name), concurrency=8)
            finally:
                children.stop_all()

        summary, states = asyncio.run(main())
        lines = {k: (tmp_path / f"generator-{k + 1}.jsonl").read_text().splitlines() for k in range(workers)}
        per_process = {k: {r["client"] for r in map(json.loads, lines[k]) if r.get("type") == "op"}
                       for k in range(workers)}
        children.merge_histories(lambda t: None)
    return summary, states, per_process, read_history(path)


def test_two_processes_run_the_same_schedule_and_choices_as_one(tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.mkdir()
    with HistoryWriter(one / "history.jsonl") as w:
        asyncio.run(run_workload(lambda c, r: _noop(c, r), WorkloadConfig(rate=400, clients=4, seed=5, phases=PHASES),
                                 w))
    reference = _signature(read_history(one / "history.jsonl"))
    two = tmp_path / "two"
    two.mkdir()
    seen: list[str] = []
    summary, states, per_process, h = _parallel(two, 2, seen)
    assert _signature(h) == reference and len(reference) == 440
    assert per_process == {0: {0, 2}, 1: {1, 3}}  # a client's operations all ran in one process
    assert states == [{"share": [0, 2]}, {"share": [1, 2]}]
    assert summary.ok == summary.launched == 440 and summary.send_lag_us.get_total_count() == 440
    # the parent alone announced the phases, once each, and wrote run_start/run_end once
    assert seen == [p for p, _ in PHASES] == [e.fields["name"] for e in h.events_of(PHASE)]
    assert len(h.events_of(RUN_START)) == len(h.events_of(RUN_END)) == 1
    assert all(o.start >= o.intended for o in h.ops)


async def _noop(client: int, rng: random.Random) -> OpResult:
    return OpResult("noop", {"draw": rng.randrange(1 << 30)})


def test_shares_partition_the_schedule_by_client() -> None:
    cfg = WorkloadConfig(rate=300, duration=1, clients=6, seed=3, arrivals="poisson")
    whole = list(plan(cfg))
    parts = [list(plan(cfg, Share(k, 3))) for k in range(3)]
    assert sorted((p for part in parts for p in part), key=lambda p: p.index) == whole
    assert all(p.client % 3 == k for k, part in enumerate(parts) for p in part)


def test_worker_counts_out_of_range_are_refused() -> None:
    with pytest.raises(LabError, match=r"accepted: 1..4"):
        check_workers(5, clients=4)
    with pytest.raises(LabError):
        check_workers(0, clients=8)
    check_workers(8, clients=16)


async def _broken_source(config: dict[str, Any], writer: HistoryWriter, share: Share) -> Source:
    async def op(client: int, rng: random.Random) -> OpResult:
        if share.index == 1:
            import os
            os._exit(3)  # this generator process dies mid-run
        return OpResult("noop")

    async def close() -> dict[str, Any]:
        return {}
    return Source(op, close)


def test_a_generator_that_dies_stops_the_run_with_one_line_naming_it(tmp_path: Path) -> None:
    seen: list[str] = []
    with HistoryWriter(tmp_path / "history.jsonl") as w:
        children = Children(tmp_path, w)

        async def main() -> None:
            try:
                await run_in_processes(children, w, WorkloadConfig(rate=100, clients=2, phases=(("baseline", 5),)),
                                       2, "tests.experiments.test_exp_generator:_broken_source", {},
                                       on_phase=lambda win: seen.append(win.name))
            finally:
                children.stop_all()

        with pytest.raises(LabError, match="generator-2 exited \\(code 3\\) before finishing"):
            asyncio.run(asyncio.wait_for(main(), 4))  # well before the 5 s schedule ends


class _FullDisk:
    """A history file on a disk that refuses every write (ENOSPC)."""

    def write(self, *_text: object) -> None:
        import errno
        raise OSError(errno.ENOSPC, "No space left on device")

    flush = close = write


async def _full_disk_source(config: dict[str, Any], writer: HistoryWriter, share: Share) -> Source:
    async def op(client: int, rng: random.Random) -> OpResult:
        if share.index == 1 and writer.failed is None:
            # this generator's disk fills up mid-run (HistoryWriter calls only write, flush and close)
            writer._f = _FullDisk()  # type: ignore[assignment]  # a stand-in file, not a TextIOBase
            writer.flush()
        return OpResult("noop")

    async def close() -> dict[str, Any]:
        return {}
    return Source(op, close)


def test_a_generator_whose_disk_is_full_stops_the_run_with_one_line_naming_it(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "history.jsonl") as w:
        children = Children(tmp_path, w)

        async def main() -> None:
            try:
                await run_in_processes(children, w, WorkloadConfig(rate=100, clients=2, phases=(("baseline", 5),)),
                                       2, "tests.experiments.test_exp_generator:_full_disk_source", {})
            finally:
                children.stop_all()

        with pytest.raises(LabError, match="generator-2 exited \\(code 1\\) before finishing"):
            asyncio.run(asyncio.wait_for(main(), 4))  # well before the 5 s schedule ends
    log = (tmp_path / "generator-2.log").read_text()
    assert "could not write its history" in log and "No space left on device" in log
