"""Open-loop scheduler: determinism, open-loop property, overload, phases.

No wall-clock speed is asserted: margins are generous and counts exact."""

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from experiments.history import PHASE, RUN_END, RUN_START, History, HistoryWriter, PhaseWindow, read_history
from experiments.workload import (
    Arrivals,
    OpFn,
    OpResult,
    PhaseHook,
    WorkloadConfig,
    WorkloadSummary,
    attempt,
    classify,
    plan,
    run_workload,
)


def _run(tmp_path: Path, op: OpFn, cfg: WorkloadConfig, on_phase: PhaseHook | None = None
         ) -> tuple[WorkloadSummary, History]:
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as w:
        summary = asyncio.run(run_workload(op, cfg, w, on_phase))
    return summary, read_history(path)


@pytest.mark.parametrize("arrivals", ["constant", "poisson"])
def test_same_seed_same_schedule(arrivals: Arrivals) -> None:
    cfg = WorkloadConfig(rate=500, duration=2, clients=3, seed=42, arrivals=arrivals)
    a, b = list(plan(cfg)), list(plan(cfg))
    assert a == b and len(a) > 100
    other = list(plan(WorkloadConfig(rate=500, duration=2, clients=3, seed=43, arrivals=arrivals)))
    if arrivals == "poisson":
        assert [p.intended for p in other] != [p.intended for p in a]
    assert [p.seed for p in other] != [p.seed for p in a]


def test_constant_schedule_times() -> None:
    cfg = WorkloadConfig(rate=10, duration=1, clients=2)
    ps = list(plan(cfg))
    assert [p.intended for p in ps] == pytest.approx([i / 10 for i in range(10)])
    assert [p.client for p in ps] == [0, 1] * 5


def test_poisson_mean_rate() -> None:
    ps = list(plan(WorkloadConfig(rate=1000, duration=10, seed=1, arrivals="poisson")))
    assert 9000 < len(ps) < 11000


async def _choosing_op(client: int, rng: random.Random) -> tuple[str, dict[str, int], None]:
    await asyncio.sleep(rng.random() * 0.01)  # finishes out of order
    k = rng.randrange(1000)                    # drawn after an await: still deterministic
    return ("get" if rng.random() < 0.5 else "set"), {"key": k}, None


def test_same_seed_same_op_choices(tmp_path: Path) -> None:
    cfg = WorkloadConfig(rate=400, duration=0.25, clients=4, seed=7)
    runs = []
    for i in range(2):
        d = tmp_path / str(i)
        d.mkdir()
        _, h = _run(d, _choosing_op, cfg)
        t_start = h.events_of(RUN_START)[0].t  # intended times are offset by the start
        runs.append(sorted((round(o.intended - t_start, 9), o.client, o.op, o.args["key"])
                           for o in h.ops))
    assert runs[0] == runs[1] and len(runs[0]) == 100


def test_open_loop_stall_does_not_reduce_launches(tmp_path: Path) -> None:
    stall = 0.2  # s

    async def stalled(client: int, rng: random.Random) -> OpResult:
        await asyncio.sleep(stall)
        return OpResult("get")

    cfg = WorkloadConfig(rate=100, duration=0.5, clients=2, max_in_flight=10_000)
    summary, h = _run(tmp_path, stalled, cfg)
    # a closed loop with 2 clients would manage ~2 * 0.5 / 0.2 = 5 ops
    assert summary.planned == summary.launched == len(h.ops) == 50
    assert summary.overloaded == 0
    assert all(o.ok for o in h.ops)
    assert min(o.latency for o in h.ops) >= stall * 0.99
    assert all(o.latency >= o.service_time for o in h.ops)
    assert [o.intended - h.ops[0].intended for o in h.ops] == pytest.approx(
        [i / 100 for i in range(50)])


def test_latency_includes_send_lag_when_the_loop_is_blocked(tmp_path: Path) -> None:
    import time
    blocked: list[int] = []

    async def op(client: int, rng: random.Random) -> OpResult:
        if not blocked:
            blocked.append(1)
            time.sleep(0.2)  # noqa: ASYNC251 - on purpose; blocks the event loop: later ops start late
        return OpResult("get")

    cfg = WorkloadConfig(rate=100, duration=0.3, max_in_flight=10_000)
    _, h = _run(tmp_path, op, cfg)
    late = [o for o in h.ops if o.send_lag > 0.05]
    assert late, "ops due during the block must start late"
    assert all(o.latency >= o.send_lag for o in h.ops)


def test_overload_is_recorded_not_delayed(tmp_path: Path) -> None:
    async def stalled(client: int, rng: random.Random) -> OpResult:
        await asyncio.sleep(0.3)
        return OpResult("get")

    cfg = WorkloadConfig(rate=100, duration=0.3, max_in_flight=5)
    summary, h = _run(tmp_path, stalled, cfg)
    over = [o for o in h.ops if o.error == "overload"]
    assert summary.planned == 30 == len(h.ops)
    assert summary.launched == 5 and len(over) == 25 == summary.overloaded
    assert all(o.outcome == "fail" for o in over)


def test_phases_tag_ops_and_emit_events_and_hooks(tmp_path: Path) -> None:
    seen = []

    async def hook(window: PhaseWindow) -> None:
        seen.append(window.name)

    cfg = WorkloadConfig(rate=100, clients=1, phases=(("baseline", 0.2), ("fault", 0.2),
                                                      ("recovery", 0.1)))
    _, h = _run(tmp_path, lambda c, r: _ok(), cfg, hook)
    assert seen == ["baseline", "fault", "recovery"]
    assert [e.fields["name"] for e in h.events_of(PHASE)] == seen
    t0 = h.ops[0].intended
    for o in h.ops:
        rel = o.intended - t0
        want = "baseline" if rel < 0.2 - 1e-9 else "fault" if rel < 0.4 - 1e-9 else "recovery"
        assert o.phase == want
    assert h.completed and h.events_of(RUN_END)


async def _ok() -> OpResult:
    return OpResult("get")


@pytest.mark.parametrize("where", ["thread", "loop"])
def test_a_fault_plan_that_blocks_in_its_thread_does_not_hold_the_schedule(tmp_path: Path, where: str) -> None:
    # the runner's on_phase awaits the fault plan and the injector on a thread of their own: a plan that
    # blocks 0.5 s (a slow `docker kill`, a node that does not answer) must not delay the ops due meanwhile;
    # the same call on the loop itself does (what the test tells apart)
    import time

    async def hook(window: PhaseWindow) -> None:
        if window.name == "fault":
            if where == "thread":
                await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.5)
            else:
                time.sleep(0.5)  # noqa: ASYNC251 - on purpose: the blocking plan the runner must not run here

    cfg = WorkloadConfig(rate=100, clients=1, phases=(("baseline", 0.2), ("fault", 0.8)), max_in_flight=10_000)
    _, h = _run(tmp_path, lambda c, r: _ok(), cfg, hook)
    during = [o for o in h.ops if o.phase == "fault" and o.intended - h.ops[0].intended < 0.6]
    assert len(during) >= 30
    worst = max(o.send_lag for o in during)
    assert (worst < 0.25) if where == "thread" else (worst > 0.3), worst


def test_phase_hook_failure_aborts_run(tmp_path: Path) -> None:
    def hook(window: PhaseWindow) -> None:
        if window.name == "fault":
            raise RuntimeError("injector broke")

    cfg = WorkloadConfig(rate=100, phases=(("baseline", 0.1), ("fault", 0.5)))
    with pytest.raises(RuntimeError, match="injector broke"):
        _run(tmp_path, lambda c, r: _ok(), cfg, hook)
    h = read_history(tmp_path / "history.jsonl")
    assert not h.completed


def test_exceptions_become_records(tmp_path: Path) -> None:
    async def op(client: int, rng: random.Random) -> OpResult:
        if rng.random() < 0.5:
            raise ValueError("bug in op")
        return await attempt("get", {"k": 1}, _raise(TimeoutError()))

    _, h = _run(tmp_path, op, WorkloadConfig(rate=200, duration=0.1, seed=3))
    # the op function's own error: nothing says whether it had sent a write before: unknown
    assert {(o.op, o.outcome, o.error) for o in h.ops} == {
        ("?", "unknown", "ValueError"), ("get", "unknown", "TimeoutError")}


async def _raise(e: BaseException) -> None:
    raise e


def test_attempt_timeout_is_unknown() -> None:
    r = asyncio.run(attempt("set", {"k": 1}, asyncio.sleep(1), timeout=0.01))
    assert (r.op, r.outcome, r.error) == ("set", "unknown", "TimeoutError")


def test_a_read_that_raised_failed_it_is_not_unknown() -> None:
    # a read has no effect: a timeout or a dropped connection is a failure from the user's view
    import redis.exceptions as rex
    for exc in (rex.TimeoutError("Timeout reading from socket"), rex.ConnectionError("Connection closed")):
        r = asyncio.run(attempt("get", {"k": 1}, _raise(exc), read=True))
        assert (r.outcome, r.error) == ("fail", type(exc).__name__)
    r = asyncio.run(attempt("get", {"k": 1}, asyncio.sleep(1), timeout=0.01, read=True))
    assert (r.outcome, r.error) == ("fail", "TimeoutError")


def test_fault_cycles_number_their_phases(tmp_path: Path) -> None:
    cfg = WorkloadConfig(rate=100, phases=(("warmup", 0.05), ("baseline", 0.05), ("fault", 0.05),
                                           ("recovery", 0.05), ("fault", 0.05), ("recovery", 0.05)))
    assert [(w.name, w.cycle) for w in cfg.phase_windows()] == [
        ("warmup", None), ("baseline", None), ("fault", 1), ("recovery", 1), ("fault", 2), ("recovery", 2)]
    _, h = _run(tmp_path, lambda c, r: _ok(), cfg)
    assert [p.cycle for p in h.phase_windows()] == [None, None, 1, 1, 2, 2]


def test_classify_redis_errors() -> None:
    import redis.exceptions as rex
    assert classify(rex.TimeoutError("Timeout reading from socket"))[0] == "unknown"
    assert classify(rex.ConnectionError("Connection closed by server."))[0] == "unknown"
    assert classify(rex.ConnectionError("Error 111 connecting to localhost:6379. Connection refused."))[0] == "fail"
    assert classify(rex.BusyLoadingError("loading"))[0] == "fail"
    assert classify(rex.MaxConnectionsError("Too many connections"))[0] == "fail"
    assert classify(rex.ClusterDownError("CLUSTERDOWN"))[0] == "fail"
    assert classify(rex.ReadOnlyError("READONLY"))[0] == "fail"
    assert classify(ConnectionRefusedError())[0] == "fail"
    assert classify(ConnectionResetError())[0] == "unknown"


def test_interrupted_run_has_no_run_end(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"

    async def main() -> None:
        with HistoryWriter(path) as w:
            task = asyncio.create_task(run_workload(lambda c, r: _slow(), WorkloadConfig(
                rate=100, duration=5), w))
            while w.clock() < 0.2:  # let some ops start; then interrupt
                await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    h = read_history(path)
    assert not h.completed
    assert any(o.error == "cancelled" and o.outcome == "unknown" for o in h.ops)


async def _slow() -> OpResult:
    await asyncio.sleep(10)
    return OpResult("get")


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        WorkloadConfig(rate=0, duration=1)
    with pytest.raises(ValueError):
        WorkloadConfig(rate=1)
    assert WorkloadConfig(rate=1, phases=(("a", 2), ("b", 3))).total_duration == 5


def test_no_operation_starts_before_its_intended_time_on_uvloop(tmp_path: Path) -> None:
    # uvloop's timers tick in whole milliseconds from a cached time: a timer may fire early,
    # and an operation launched then would start before its intended time (negative send lag)
    from experiments.workload import run_loop
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as w:
        run_loop(run_workload(lambda c, r: _ok(), WorkloadConfig(rate=500, duration=0.5, clients=2), w))
    h = read_history(path)
    assert len(h.ops) == 250
    early = [o.send_lag for o in h.ops if o.start < o.intended]
    assert not early, f"{len(early)} ops started early, by up to {-min(early) * 1000:.2f} ms"


def test_op_rng_draws_what_random_random_draws_and_is_reused_safely() -> None:
    import random

    from experiments.oprandom import RandomPool

    def draws(r: random.Random) -> list[Any]:
        out = [r.gauss(0, 1), r.random(), r.randrange(1000), r.choice("abcdef"), r.paretovariate(1.2),
               r.gauss(0, 1), r.sample(range(100), 5), r.getrandbits(70), r.choices("abc", k=3)]
        xs = list(range(20))
        r.shuffle(xs)
        return [*out, xs]

    pool = RandomPool()
    for seed in (0, 7, 2**40 + 3):
        for first in (lambda r: r.gauss(0, 1), lambda r: r.randrange(10), lambda r: None):
            rng = pool.take(seed)
            got = (first(rng), draws(rng))
            pool.give(rng)  # the same object serves the next seed: nothing of this one may leak
            ref = random.Random(seed)
            assert got == (first(ref), draws(ref))


def test_slots_bound_the_operations_in_flight(tmp_path: Path) -> None:
    from experiments.workload import Slots
    inside, peak = 0, 0

    async def op(client: int, rng: random.Random) -> OpResult:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(0.05)
        inside -= 1
        return OpResult("get")

    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as w:
        summary = asyncio.run(run_workload(op, WorkloadConfig(rate=400, duration=0.25, max_in_flight=10_000),
                                           w, slots=Slots(3)))
    h = read_history(path)
    assert peak == 3 and summary.ok == len(h.ops) == 100
    # waiting for a slot is latency, not send lag: the queue shows in end - intended
    assert max(o.latency for o in h.ops) > 0.5
