"""Open-loop workload scheduler (asyncio).

Each operation has an *intended* start time fixed in advance by the schedule
(constant rate or Poisson arrivals at ``rate`` ops/s). The scheduler launches
every operation at its intended time without waiting for earlier ones, so a
stalled server shows up as latency and errors instead of silently lowering the
offered load (no coordinated omission). Latency is ``end - intended``; the send
lag ``start - intended`` is recorded too.

Overload: at most ``max_in_flight`` operations run at once. When the cap is
hit, the operation due now is **not** delayed: it is recorded at once as
``outcome="fail", error="overload"`` and never reaches Redis. Overload
failures therefore lower availability; ``errors_by_type`` shows them apart.

An operation never starts before its intended time (uvloop's timers may fire
up to ~1.5 ms early: the scheduler sleeps again).

Determinism: the same seed gives the same intended times, the same client for
each operation, and the same per-operation RNG (seeded from seed and the
operation's index), so an op function that draws its choices from the RNG it
is given makes the same choices whatever the timing, and whatever the split
over generator processes (:class:`Share`, ``experiments.generator``). The RNG
is only valid until the op function returns (it is reused).

The op function::

    async def op(client_id: int, rng: random.Random) -> OpResult | tuple[str, Any, Any]

returns ``OpResult`` (or ``(op_name, args, value)``, meaning ok). Wrap Redis
calls with :func:`attempt` so failures keep their op name and args and are
classified (timeout -> unknown). An exception escaping the op function is
classified too, but is recorded with op name ``"?"``.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import math
import random
import sys
import tempfile
from array import array
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from hdrh.histogram import HdrHistogram

from patterns.failures import Effect
from patterns.failures import classify as classify_failure

from .history import (
    FAIL,
    OK,
    OVERLOAD,
    PHASE,
    RUN_END,
    RUN_START,
    UNKNOWN,
    HistoryWriter,
    Op,
    Outcome,
    PhaseWindow,
)
from .oprandom import RandomPool

Arrivals = Literal["constant", "poisson"]

HDR_MAX_US = 3_600_000_000  # highest trackable latency: 1 hour, in µs
HDR_DIGITS = 3              # significant digits


def _classify_effect(exc: BaseException) -> tuple[Outcome, str]:
    return classify(exc)


class OpResult(NamedTuple):
    """What an op function returns. ``(name, args, value)`` tuples also work."""

    op: str
    args: Any = None
    value: Any = None
    outcome: Outcome = OK
    error: str | None = None
    node: str | None = None


OpFn = Callable[[int, random.Random], Awaitable["OpResult | tuple[Any, ...]"]]
PhaseHook = Callable[[PhaseWindow], "Awaitable[None] | None"]


def classify(exc: BaseException) -> tuple[Outcome, str]:
    """Map an exception raised by an operation *with an effect* to (outcome, error type):
    ``fail`` only when ``patterns.failures.classify`` has evidence that the command did not
    execute (a refused connect, a refusal reply such as READONLY or CLUSTERDOWN, an
    exhausted pool ...); ``unknown`` when it may have executed (a timeout, a connection
    dropped after the command was sent, an error raised after it ran). A pattern's own
    exception wrapping a Redis error is judged by that cause and named by both. For a
    read, see :func:`classify_read`."""
    failure = classify_failure(exc)
    return (FAIL if failure.effect is Effect.NOT_EXECUTED else UNKNOWN), failure.name


def classify_read(exc: BaseException) -> tuple[Outcome, str]:
    """A read has no effect: whatever it raised, it failed from the user's view
    (``fail``), never ``unknown``; the error type is named as :func:`classify` names it."""
    return FAIL, classify(exc)[1]


async def attempt(op: str, args: Any, awaitable: Awaitable[Any], *,
                  timeout: float | None = None, node: str | None = None, read: bool = False,
                  classify: Callable[[BaseException], tuple[Outcome, str]] | None = None,
                  ) -> OpResult:
    """Await a client call and turn its result or exception into an OpResult.

    ``timeout`` is in seconds; exceeding it gives ``unknown``/``TimeoutError`` (``fail``
    for a ``read``: an operation without effect). ``classify`` overrides the mapping
    of exceptions to outcomes (default: :func:`classify`, or :func:`classify_read`).
    """
    if classify is None:
        classify = classify_read if read else _classify_effect
    try:
        if timeout is None:
            value = await awaitable
        else:
            async with asyncio.timeout(timeout):
                value = await awaitable
    except Exception as e:  # noqa: BLE001 - every failure becomes a record
        outcome, err = classify(e)
        return OpResult(op, args, None, outcome, err, node)
    return OpResult(op, args, value, OK, None, node)


@dataclass(frozen=True)
class WorkloadConfig:
    """Parameters of one workload run.

    rate: target ops/s for the whole workload (all clients together).
    duration: seconds; defaults to the sum of phase durations.
    clients: number of logical clients; op i belongs to client ``i % clients``.
    seed: RNG seed for arrivals and per-op RNGs.
    arrivals: ``constant`` (every 1/rate s) or ``poisson`` (exponential gaps).
    max_in_flight: cap on concurrent operations (see module doc: overload).
    drain_timeout: seconds to wait for in-flight ops after the last launch;
        ops still running are cancelled and recorded ``unknown``/``cancelled``.
    phases: ``(name, duration_s)`` pairs laid end to end from the start.
    """

    rate: float
    duration: float | None = None
    clients: int = 1
    seed: int = 0
    arrivals: Arrivals = "constant"
    max_in_flight: int = 1000
    drain_timeout: float = 10.0
    phases: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be > 0 ops/s, got {self.rate}")
        if self.clients < 1 or self.max_in_flight < 1:
            raise ValueError("clients and max_in_flight must be >= 1")
        if self.arrivals not in ("constant", "poisson"):
            raise ValueError(f"arrivals must be 'constant' or 'poisson', got {self.arrivals!r}")
        if self.duration is None and not self.phases:
            raise ValueError("give a duration or phases")

    @property
    def total_duration(self) -> float:
        """Seconds of scheduled load."""
        if self.duration is not None:
            return self.duration
        return sum(d for _, d in self.phases)

    def phase_windows(self, offset: float = 0.0) -> list[PhaseWindow]:
        """Phases as windows starting at ``offset`` (s since t0); each ``fault``
        phase starts a new cycle, numbered from 1, and the ``recovery`` after it
        shares its number. Without phases, one phase ``main`` covers the run."""
        if not self.phases:
            return [PhaseWindow("main", offset, offset + self.total_duration)]
        out, t, cycle = [], offset, 0
        for name, d in self.phases:
            if name == "fault":
                cycle += 1
            out.append(PhaseWindow(name, t, t + d, cycle if name in ("fault", "recovery") and cycle else None))
            t += d
        return out

    def to_json(self) -> dict[str, Any]:
        return {"rate": self.rate, "duration": self.total_duration,
                "clients": self.clients, "seed": self.seed,
                "arrivals": self.arrivals, "max_in_flight": self.max_in_flight,
                "drain_timeout": self.drain_timeout,
                "phases": [list(p) for p in self.phases]}


class Planned(NamedTuple):
    """One scheduled operation: index, intended time (s from workload start),
    client id, and the seed of its RNG."""

    index: int  # type: ignore[assignment]  # shadows tuple.index(); the field name is the history's
    intended: float
    client: int
    seed: int


@dataclass(frozen=True)
class Share:
    """The part of the schedule one generator process runs: the operations of the
    clients ``c`` with ``c % count == index``. A client's operations all run in one
    process, in its schedule order, so per-client state (a queue producer's sequence)
    stays in one place; the intended times, clients and RNG seeds are those of the
    whole schedule, whatever the split."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"share {self.index} of {self.count}: need 0 <= index < count")

    def takes(self, client: int) -> bool:
        return client % self.count == self.index


def intended_times(rate: float, duration: float, arrivals: Arrivals,
                   rng: random.Random) -> Iterator[float]:
    """Intended start times in [0, duration) seconds at ``rate`` ops/s."""
    if arrivals == "constant":
        n = math.ceil(duration * rate)
        for i in range(n):
            t = i / rate
            if t >= duration:
                return
            yield t
    else:
        t = rng.expovariate(rate)
        while t < duration:
            yield t
            t += rng.expovariate(rate)


def plan(config: WorkloadConfig, share: Share = Share()) -> Iterator[Planned]:
    """The deterministic schedule for ``config`` (times from workload start), or the
    part of it ``share`` runs."""
    rng = random.Random(config.seed)
    base = config.seed * (1 << 32)
    clients, takes, whole = config.clients, share.takes, share.count == 1
    for i, t in enumerate(intended_times(config.rate, config.total_duration,
                                         config.arrivals, rng)):
        client = i % clients
        if whole or takes(client):
            yield Planned(i, t, client, base + i)


def op_rng(planned: Planned) -> random.Random:
    """The RNG handed to the op function for this operation (the generator hands
    out an :class:`~experiments.oprandom.OpRandom` that draws the same numbers)."""
    return random.Random(planned.seed)


def _hist() -> HdrHistogram:
    return HdrHistogram(1, HDR_MAX_US, HDR_DIGITS)


def _hist_of(values_us: array[int]) -> HdrHistogram:
    """An HdrHistogram of ``values_us`` (µs), built in one pass over the distinct values."""
    h = _hist()
    if values_us:
        vals, counts = np.unique(np.clip(np.frombuffer(values_us, dtype=np.int64), 1, HDR_MAX_US),
                                 return_counts=True)
        for v, c in zip(vals.tolist(), counts.tolist(), strict=False):
            h.record_value(v, c)
    return h


@dataclass
class WorkloadSummary:
    """Counts and quick figures from the run (the history is the record).

    ``send_lag_us``/``latency_us``: HdrHistograms in microseconds of the
    launched operations, built when first read (the generator only appends the
    values: recording into an HdrHistogram costs ~4 µs an operation).
    """

    planned: int = 0
    launched: int = 0
    overloaded: int = 0
    cancelled: int = 0
    completed: int = 0
    ok: int = 0
    failed: int = 0      # completed with outcome fail (overload drops apart)
    unknown: int = 0     # completed with outcome unknown
    start: float = 0.0   # s since t0
    end: float = 0.0     # s since t0
    lags_us: array[int] = field(default_factory=lambda: array("q"), repr=False)
    latencies_us: array[int] = field(default_factory=lambda: array("q"), repr=False)
    _merged: list[tuple[HdrHistogram, HdrHistogram]] = field(default_factory=list, repr=False)
    _hists: tuple[int, HdrHistogram, HdrHistogram] | None = field(default=None, repr=False)

    @property
    def elapsed(self) -> float:
        return self.end - self.start

    def _histograms(self) -> tuple[HdrHistogram, HdrHistogram]:
        n = len(self.lags_us) + len(self._merged)
        if self._hists is None or self._hists[0] != n:
            lag, lat = _hist_of(self.lags_us), _hist_of(self.latencies_us)
            for other_lag, other_lat in self._merged:
                lag.add(other_lag)
                lat.add(other_lat)
            self._hists = (n, lag, lat)
        return self._hists[1], self._hists[2]

    @property
    def send_lag_us(self) -> HdrHistogram:
        return self._histograms()[0]

    @property
    def latency_us(self) -> HdrHistogram:
        return self._histograms()[1]

    COUNTS = ("planned", "launched", "overloaded", "cancelled", "completed", "ok", "failed", "unknown")

    def to_wire(self) -> dict[str, Any]:
        """Counts, bounds and both histograms (HdrHistogram's compressed encoding), for
        :meth:`merge` in another process."""
        lag, lat = self._histograms()
        return {**{k: getattr(self, k) for k in self.COUNTS}, "start": self.start, "end": self.end,
                "send_lag_hdr": lag.encode().decode(), "latency_hdr": lat.encode().decode()}

    def merge(self, wire: dict[str, Any]) -> None:
        """Add another generator process's :meth:`to_wire` summary to this one."""
        for k in self.COUNTS:
            setattr(self, k, getattr(self, k) + int(wire[k]))
        self.start = min(self.start, float(wire["start"]))
        self.end = max(self.end, float(wire["end"]))
        self._merged.append((HdrHistogram.decode(wire["send_lag_hdr"]), HdrHistogram.decode(wire["latency_hdr"])))

    def to_json(self) -> dict[str, Any]:
        return {"planned": self.planned, "launched": self.launched,
                "overloaded": self.overloaded, "cancelled": self.cancelled,
                "completed": self.completed, "ok": self.ok,
                "elapsed_s": self.elapsed,
                "send_lag_p99_ms": self.send_lag_us.get_value_at_percentile(99) / 1000,
                "latency_p99_ms": self.latency_us.get_value_at_percentile(99) / 1000}


class Slots:
    """At most ``n`` operations inside their op function at once, the others waiting
    in arrival order: an application's bounded worker pool. A free slot is taken
    without awaiting anything (``asyncio.Semaphore`` costs a few coroutine frames
    per operation even then)."""

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"slots must be >= 1, got {n}")
        self.free = n
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def wait(self) -> None:
        """Wait for a slot (call only when ``free`` is 0); the slot is then held."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot goes straight to the next waiter
                return
        self.free += 1


async def sleep_until(clock: Callable[[], float], t: float) -> None:
    """Sleep until ``clock() >= t`` (s). uvloop's timers tick in whole milliseconds from a
    time cached at the start of the loop's iteration, so a timer may fire up to about
    1.5 ms early: an operation would start before its intended time. Sleep again (at
    least a tick) until it is due."""
    delay = t - clock()
    while delay > 0:
        await asyncio.sleep(delay if delay > 0.001 else 0.001)
        delay = t - clock()


def _phase_index(phases: list[PhaseWindow]) -> Callable[[float], str]:
    """``phase_of(t)``: the name of the phase run time ``t`` falls in (intended times
    arrive in order: a moving cursor)."""
    starts = [p.start for p in phases]
    names = [p.name for p in phases]
    i = 0

    def phase_of(t: float) -> str:
        nonlocal i
        while i + 1 < len(starts) and t >= starts[i + 1]:
            i += 1
        return names[i]
    return phase_of


async def announce_phases(config: WorkloadConfig, writer: HistoryWriter, offset: float,
                          on_phase: PhaseHook | None = None) -> None:
    """At each phase start (run time ``offset`` + its start), write a ``phase`` event and
    call ``on_phase(window)`` (awaited if it returns an awaitable)."""
    for w in config.phase_windows(offset):
        await sleep_until(writer.clock, w.start)
        writer.event(PHASE, name=w.name, start=w.start, end=w.end, cycle=w.cycle)
        if on_phase is not None:
            r = on_phase(w)
            if inspect.isawaitable(r):
                await r


async def generate(op: OpFn, config: WorkloadConfig, writer: HistoryWriter, offset: float,
                   share: Share = Share(), announcer: asyncio.Task[None] | None = None,
                   summary: WorkloadSummary | None = None, slots: Slots | None = None) -> WorkloadSummary:
    """Launch ``share``'s part of the schedule at run time ``offset`` + each intended time and
    record every operation (no phase or run events: :func:`run_workload` and the runner write
    those). ``announcer``: a task whose failure aborts the load. ``summary``: filled as
    operations complete (live counts). ``slots``: bounds the operations inside ``op`` at once
    (waiting for a slot is latency: ``start`` is stamped before it)."""
    loop = asyncio.get_running_loop()
    clock = writer.clock
    wall0 = writer.wall0
    write_op = writer.write_op
    phase_of = _phase_index(config.phase_windows(offset))
    summary = summary if summary is not None else WorkloadSummary()
    summary.start = offset
    tasks: dict[int, asyncio.Task[None]] = {}
    lags, lats = summary.lags_us.append, summary.latencies_us.append
    rngs = RandomPool()
    take_rng, give_rng = rngs.take, rngs.give
    cap = config.max_in_flight

    async def one(index: int, client: int, seed: int, intended: float, phase: str) -> None:
        start = clock()
        res: OpResult | None = None
        rng = take_rng(seed)
        try:
            if slots is not None:
                if slots.free:
                    slots.free -= 1
                else:
                    await slots.wait()
                try:
                    got = await op(client, rng)
                finally:
                    slots.release()
            else:
                got = await op(client, rng)
            res = got if type(got) is OpResult else OpResult(*got)
        except asyncio.CancelledError:
            res = OpResult("?", None, None, UNKNOWN, "cancelled")
            summary.cancelled += 1
            raise
        except Exception as e:  # noqa: BLE001 - recorded, never lost
            outcome, err = classify(e)
            res = OpResult("?", None, None, outcome, err)
        finally:
            end = clock()
            give_rng(rng)
            if res is None:  # KeyboardInterrupt or similar
                res = OpResult("?", None, None, UNKNOWN, "interrupted")
            del tasks[index]
            summary.completed += 1
            outcome = res.outcome
            if outcome == OK:
                summary.ok += 1
            elif outcome == FAIL:
                summary.failed += 1
            else:
                summary.unknown += 1
            lags(int((start - intended) * 1e6))
            lats(int((end - intended) * 1e6))
            write_op(Op(client, res.op, res.args, intended, start, end, wall0 + start, outcome,
                        res.value, res.error, res.node, phase))

    try:
        burst = 0
        for p in plan(config, share):
            intended = offset + p.intended
            if intended > clock():
                await sleep_until(clock, intended)
                burst = 0
            else:
                burst += 1
                if burst >= 64:  # behind schedule: still let ops run
                    burst = 0
                    await asyncio.sleep(0)
            if announcer is not None and announcer.done() and (failure := announcer.exception()) is not None:
                raise failure
            phase = phase_of(intended)
            summary.planned += 1
            if len(tasks) >= cap:
                now = clock()
                summary.overloaded += 1
                write_op(Op(p.client, "?", None, intended, now, now, wall0 + now, FAIL, None, OVERLOAD,
                            None, phase))
                continue
            summary.launched += 1
            tasks[p.index] = loop.create_task(one(p.index, p.client, p.seed, intended, phase))
        if tasks:
            await asyncio.wait(list(tasks.values()), timeout=config.drain_timeout)
    finally:
        # Interrupted or drained: cancel what is left; each records itself.
        pending = list(tasks.values())
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        summary.end = clock()
    return summary


async def run_workload(op: OpFn, config: WorkloadConfig, writer: HistoryWriter,
                       on_phase: PhaseHook | None = None, summary: WorkloadSummary | None = None,
                       slots: Slots | None = None) -> WorkloadSummary:
    """Run ``op`` open-loop per ``config`` in this process, recording every op to ``writer``.

    Intended times are offset by the writer clock at call time. At each phase
    start a ``phase`` event is written and ``on_phase(window)`` is called
    (awaited if it returns an awaitable; an exception aborts the run). A
    ``run_end`` event is written only when the run completes normally.
    ``summary`` and ``slots``: see :func:`generate`.
    """
    loop = asyncio.get_running_loop()
    offset = writer.clock()
    writer.event(RUN_START, t=offset, **config.to_json())
    announcer = loop.create_task(announce_phases(config, writer, offset, on_phase))
    try:
        summary = await generate(op, config, writer, offset, announcer=announcer, summary=summary, slots=slots)
        await announcer
    finally:
        if not announcer.done():
            announcer.cancel()
        await asyncio.gather(announcer, return_exceptions=True)
    writer.event(RUN_END, **summary.to_json())
    return summary


def run(op: OpFn, config: WorkloadConfig, writer: HistoryWriter,
        on_phase: PhaseHook | None = None) -> WorkloadSummary:
    """Synchronous wrapper around :func:`run_workload`."""
    return run_loop(run_workload(op, config, writer, on_phase))


async def noop_op(client: int, rng: random.Random) -> OpResult:
    """A trivial operation for benchmarks: returns at once."""
    return OpResult("noop", None, None)


@dataclass(frozen=True)
class BenchResult:
    """One benchmark row. Rates in ops/s, lags in ms."""

    target_rate: float
    achieved_rate: float
    launched: int
    overloaded: int
    send_lag_p50_ms: float
    send_lag_p99_ms: float
    send_lag_max_ms: float


def benchmark_rate(rate: float, duration: float = 2.0, clients: int = 16,
                   arrivals: Arrivals = "constant", max_in_flight: int = 10_000,
                   history_dir: str | Path | None = None) -> BenchResult:
    """Run the no-op workload at ``rate`` ops/s for ``duration`` s, writing a
    real history file, and report achieved rate and send lag.

    Achieved rate = ok operations / elapsed seconds (launch of the first op
    to completion of the last), so falling behind schedule shows.
    """
    with tempfile.TemporaryDirectory(dir=history_dir) as d, HistoryWriter(Path(d) / "history.jsonl") as w:
        cfg = WorkloadConfig(rate=rate, duration=duration, clients=clients,
                             arrivals=arrivals, max_in_flight=max_in_flight)
        s = run(noop_op, cfg, w)
    lag = s.send_lag_us
    return BenchResult(rate, s.ok / max(s.elapsed, duration), s.launched, s.overloaded,
                       lag.get_value_at_percentile(50) / 1000,
                       lag.get_value_at_percentile(99) / 1000,
                       lag.get_max_value() / 1000)


GIL_SWITCH_INTERVAL_S = 0.001  # CPython's default is 0.005


def run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """Run ``main`` on uvloop (libuv's event loop: a fraction of asyncio's per-callback
    overhead, so the generator keeps its schedule at higher rates), or on asyncio's own
    loop where uvloop is not installed.

    While it runs, a thread that wants the interpreter (the fault plan's own thread
    talking to Toxiproxy, SQLite's pool) gets it after at most 1 ms instead of CPython's
    5 ms, and the loop gets it back as fast: a fault injected from a thread no longer
    holds the generator's operations up to 5 ms at the very moment the fault starts."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, GIL_SWITCH_INTERVAL_S))
    try:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency; kept for odd platforms
            return asyncio.run(main)
        return uvloop.run(main)
    finally:
        sys.setswitchinterval(previous)
