"""The history: one record type for operations, one for events, one file.

Every figure in a report is derived from ``history.jsonl``. Each line is one
JSON object with a ``"type"`` field:

* ``"meta"``  - first line: format version, ``t0_wall`` (Unix seconds at t0).
* ``"op"``    - one completed operation (:class:`Op`).
* ``"event"`` - something that happened to the system (:class:`Event`):
  fault inject/heal, phase change, server INFO sample, breaker state change,
  node role change, the final state read after the run. ``Event`` is defined
  with the fault side (``faults.events``), which writes its records as they are.

Times: ``intended``, ``start``, ``end`` and ``Event.t`` are monotonic seconds
relative to the run's t0 (``time.monotonic()`` at writer creation). ``wall``
is Unix seconds (wall clock), only for lining up with other logs.

Outcomes follow Jepsen: ``ok`` (it happened), ``fail`` (it certainly did not
happen), ``unknown`` (a timeout or lost connection on an operation with an
effect: it may have happened). A read has no effect, so a read that raised is
``fail`` from the user's view, never ``unknown``.

Record kinds (``Op.kind``): ``workload`` (one operation of the open-loop
workload, as a user issued it: the only records availability, latency, send
lag and recovery figures are computed over), ``step`` (a sub-step of a workload
operation, e.g. a lock's acquire / fenced write / release) and ``worker`` (work
done by a background process, e.g. a queue consumer handling a job). Steps
and worker records feed the pattern checks and are reported apart.
"""

from __future__ import annotations

import io
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]  # json's C encoder is private: not in typeshed
from pathlib import Path
from typing import Any, Literal

from faults.events import FAULT_HEAL, FAULT_INJECT, Event

FORMAT_VERSION = 2  # 2: Op.kind, warm-up phase, topology events

Outcome = Literal["ok", "fail", "unknown"]
OK: Outcome = "ok"
FAIL: Outcome = "fail"
UNKNOWN: Outcome = "unknown"
OUTCOMES: tuple[Outcome, ...] = (OK, FAIL, UNKNOWN)

# Event kinds. Producers may add their own kinds; these are the ones the
# report and checks understand.
# FAULT_INJECT, FAULT_HEAL: fields fault (id), label, target, params, took_s (faults.events)
PHASE = "phase"                # fields: name, start, end (s since t0)
SERVER_INFO = "server_info"    # fields: node, info (dict of INFO fields)
BREAKER = "breaker"            # fields: name?, state ("closed"|"open"|"half-open")
ROLE = "role"                  # fields: node, role ("master"|"replica"|...)
FINAL_STATE = "final_state"    # fields: anything the checks need (merged)
RUN_START = "run_start"        # fields: workload parameters
RUN_END = "run_end"            # fields: counts; absent => run was interrupted

TOPOLOGY = "topology"          # fields: source, event, detail (what the topology said: Sentinel pub/sub ...)
LAB = "lab"                    # fields: component ("toxiproxy"), up: the lab's own machinery changed state
DURABLE_KINDS = frozenset({FAULT_INJECT, FAULT_HEAL, LAB})  # written to disk at once: a crash keeps them
WARMUP = "warmup"              # the phase excluded from every figure (connection set-up, JIT of the pools)

# Record kinds (Op.kind)
WORKLOAD = "workload"
STEP = "step"
WORKER = "worker"
KINDS = (WORKLOAD, STEP, WORKER)

# Error type recorded for operations refused by the load generator itself
# because too many operations were in flight (see experiments.workload).
OVERLOAD = "overload"


@dataclass(slots=True)
class Op:
    """One operation, as the client saw it.

    Attributes:
        client: logical client id (0..clients-1).
        op: operation name, e.g. ``"get"``, ``"add"``, ``"acquire"``.
        args: JSON-able arguments chosen for the operation.
        intended: when the operation was scheduled to start (s since t0).
        start: when it actually started (s since t0); ``start - intended`` is
            the send lag.
        end: when the client got its answer or gave up (s since t0).
        wall: Unix seconds at ``start``.
        outcome: ``ok`` | ``fail`` | ``unknown``.
        value: JSON-able result (read value, acknowledgement details...).
        error: error type name when outcome is not ok (e.g. ``"TimeoutError"``).
        node: the node that served it, when known.
        phase: name of the workload phase at ``intended``.
        kind: ``workload`` | ``step`` | ``worker`` (see the module doc).
    """

    client: int
    op: str
    args: Any
    intended: float
    start: float
    end: float
    wall: float
    outcome: Outcome
    value: Any = None
    error: str | None = None
    node: str | None = None
    phase: str | None = None
    kind: str = WORKLOAD

    @property
    def latency(self) -> float:
        """Seconds from intended start to end (includes send lag: no
        coordinated omission)."""
        return self.end - self.intended

    @property
    def service_time(self) -> float:
        """Seconds from actual start to end."""
        return self.end - self.start

    @property
    def send_lag(self) -> float:
        """Seconds between intended and actual start."""
        return self.start - self.intended

    @property
    def ok(self) -> bool:
        return self.outcome == OK

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "op", "client": self.client, "op": self.op,
            "args": self.args, "intended": self.intended,
            "start": self.start, "end": self.end, "wall": self.wall,
            "outcome": self.outcome, "value": self.value,
            "error": self.error, "node": self.node, "phase": self.phase,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Op:
        outcome = d["outcome"]
        if outcome not in OUTCOMES:
            raise ValueError(f"bad outcome {outcome!r}; expected one of {OUTCOMES}")
        return cls(
            client=d["client"], op=d["op"], args=d.get("args"),
            intended=d["intended"], start=d["start"], end=d["end"],
            wall=d.get("wall", math.nan), outcome=outcome,
            value=d.get("value"), error=d.get("error"), node=d.get("node"),
            phase=d.get("phase"), kind=d.get("kind", WORKLOAD),
        )


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """A fault's active interval (s since t0); ``end`` is None if never healed."""

    fault: str
    label: str
    start: float
    end: float | None


@dataclass(frozen=True, slots=True)
class Cycle:
    """One fault cycle (s since t0): the fault window ``[inject, heal)`` and what
    follows it, ``[heal, next)`` where ``next`` is the next inject or the end of
    the run. The one definition of "during the fault" used by every figure: an
    operation is *during* the fault when it was intended before the heal and was
    still in flight at (or began after) the inject, so the requests the fault hit
    in flight count as hit; it is *after the heal* when intended after the heal and
    finished before the next inject."""

    index: int  # 1-based
    fault: FaultWindow
    next: float  # the next cycle's inject, or the end of the run
    prev: float = -math.inf  # the previous cycle's heal

    @property
    def start(self) -> float:
        return self.fault.start

    @property
    def heal(self) -> float:
        """When the fault was healed (the end of the run if it never was)."""
        return self.fault.end if self.fault.end is not None else self.next


@dataclass(frozen=True, slots=True)
class PhaseWindow:
    """A workload phase interval (s since t0); ``cycle`` numbers the fault cycle a
    ``fault`` or ``recovery`` phase belongs to (1-based), None for the others."""

    name: str
    start: float
    end: float
    cycle: int | None = None


@dataclass
class History:
    """Operations and events of one run, each sorted by time.

    Ops are sorted by ``intended``; events by ``t``. ``truncated_lines`` counts
    unparseable lines skipped by the reader (a run killed mid-write).
    """

    ops: list[Op] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    truncated_lines: int = 0

    def __post_init__(self) -> None:
        self.ops.sort(key=lambda o: o.intended)
        self.events.sort(key=lambda e: e.t)

    @property
    def workload(self) -> list[Op]:
        """The workload's own operations after the warm-up: what every availability,
        latency, send-lag and recovery figure is computed over."""
        return [o for o in self.ops if o.kind == WORKLOAD and o.phase != WARMUP]

    def warmup_end(self) -> float | None:
        """End of the declared warm-up phase (s since t0), None without one."""
        return next((p.end for p in self.phase_windows() if p.name == WARMUP), None)

    def cycles(self) -> list[Cycle]:
        """The fault cycles, in order (see :class:`Cycle`)."""
        windows = self.fault_windows()
        end = self.t_end
        out: list[Cycle] = []
        for i, w in enumerate(windows):
            nxt = windows[i + 1].start if i + 1 < len(windows) else max(end, w.end or end)
            out.append(Cycle(i + 1, w, nxt, out[-1].heal if out else -math.inf))
        return out

    def before_faults(self) -> list[Op]:
        """Workload ops (after the warm-up) that finished before the first fault: the baseline."""
        windows = self.fault_windows()
        cut = windows[0].start if windows else math.inf
        return [o for o in self.workload if o.end < cut]

    def during(self, c: Cycle) -> list[Op]:
        """Workload ops during cycle ``c``'s fault (intended before the heal, in flight at or after the inject)."""
        return [o for o in self.workload if c.prev <= o.intended < c.heal and o.end >= c.start]

    def after(self, c: Cycle) -> list[Op]:
        """Workload ops after cycle ``c``'s heal (intended after it, finished before the next inject)."""
        return [o for o in self.workload if c.heal <= o.intended and o.end < c.next]

    def events_of(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    def fault_windows(self) -> list[FaultWindow]:
        """Pair ``fault_inject`` with the next ``fault_heal`` of the same
        ``fault`` id (default id: the label)."""
        open_: dict[str, Event] = {}
        windows: list[FaultWindow] = []
        for e in self.events:
            if e.kind not in (FAULT_INJECT, FAULT_HEAL):
                continue
            fid = str(e.fields.get("fault", e.fields.get("label", "fault")))
            if e.kind == FAULT_INJECT:
                if fid not in open_:
                    open_[fid] = e
            elif fid in open_:
                inj = open_.pop(fid)
                windows.append(_window(fid, inj, e.t))
        windows.extend(_window(fid, inj, None) for fid, inj in open_.items())
        windows.sort(key=lambda w: w.start)
        return windows

    def phase_windows(self) -> list[PhaseWindow]:
        """Phases announced by ``phase`` events (their scheduled bounds)."""
        out = []
        for e in self.events_of(PHASE):
            f = e.fields
            out.append(PhaseWindow(str(f["name"]), float(f.get("start", e.t)),
                                   float(f.get("end", math.inf)), f.get("cycle")))
        return out

    def final_state(self) -> dict[str, Any]:
        """Merge of all ``final_state`` events' fields (later wins)."""
        state: dict[str, Any] = {}
        for e in self.events_of(FINAL_STATE):
            state.update(e.fields)
        return state

    @property
    def completed(self) -> bool:
        """True when the workload wrote its ``run_end`` event."""
        return any(e.kind == RUN_END for e in self.events)

    @property
    def t_end(self) -> float:
        """Last time in the history (s since t0)."""
        ts = [o.end for o in self.ops] + [e.t for e in self.events]
        return max(ts) if ts else 0.0


def _window(fid: str, inj: Event, end: float | None) -> FaultWindow:
    return FaultWindow(fid, str(inj.fields.get("label", fid)), inj.t, end)


class HistoryWriter:
    """Appends records to ``history.jsonl``; safe to share across threads.

    Records are serialised into an in-memory buffer and written every
    ``flush_every`` records (and on :meth:`flush`/:meth:`close`), so logging
    10k ops/s costs about one ``json.dumps`` per op. Use as a context manager
    so the buffer is flushed even when the run is interrupted. Every such
    write reaches the operating system (the file object's buffer flushed too):
    a child process's writer, ``flush_every=1``, keeps every record it wrote
    when the child is killed with SIGKILL (before, the records after the last
    explicit flush were lost with the process's 1-MB file buffer).

    ``clock()`` is the run's time base: monotonic seconds since t0. Fault
    injectors and samplers must stamp their events with it (``event()`` does).

    A write the disk refuses (full, read-only) is not raised into whichever task
    happened to flush: the writer records it in ``failed``, tells ``on_failure``
    once, and drops later records; what was written stays readable.
    """

    def __init__(self, path: str | Path, flush_every: int = 2000,
                 t0: float | None = None, append: bool = False) -> None:
        """``path`` is created (truncated) unless ``append``; ``t0`` is the
        ``time.monotonic()`` value that run time 0 stands for (default: now)."""
        self.path = Path(path)
        self.t0 = time.monotonic() if t0 is None else t0
        self.wall0 = time.time() - (time.monotonic() - self.t0)
        self._flush_every = flush_every
        self._buf: list[str] = []
        self.failed: OSError | None = None  # the first write the disk refused; later records are dropped
        self.on_failure: Callable[[OSError], object] | None = None  # told once, from the writing thread
        self._lock = threading.Lock()
        self._dumps = _compact_encoder()
        fresh = not append or not self.path.exists() or self.path.stat().st_size == 0
        self._f: io.TextIOBase | None = open(self.path, "a" if append else "w",  # noqa: SIM115 - closed by close()
                                              encoding="utf-8", buffering=1 << 20)
        if fresh:
            self._append({"type": "meta", "version": FORMAT_VERSION,
                          "t0_wall": self.wall0})

    def clock(self) -> float:
        """Monotonic seconds since t0."""
        return time.monotonic() - self.t0

    def wall_at(self, t: float) -> float:
        """Unix seconds corresponding to run time ``t``."""
        return self.wall0 + t

    def write_op(self, op: Op) -> None:
        self._append(op.to_json())

    def write_event(self, event: Event) -> None:
        """Append an event stamped on this history's clock (see ``DURABLE_KINDS``)."""
        self._append(event.to_json())
        if event.kind in DURABLE_KINDS:
            self.flush()

    def write_record(self, record: dict[str, Any]) -> None:
        """Append an already decoded record (e.g. from a child process's own history file)."""
        self._append(record)

    def event(self, kind: str, t: float | None = None, **fields: Any) -> Event:
        """Record an event now (or at run time ``t``) and return it."""
        t = self.clock() if t is None else t
        ev = Event(t, self.wall_at(t), kind, fields)
        self.write_event(ev)
        return ev

    def _append(self, record: dict[str, Any]) -> None:
        line = self._dumps(record)
        with self._lock:
            if self.failed is not None:
                return  # the disk refused earlier writes: the run is stopping (see ``failed``)
            self._buf.append(line)
            if len(self._buf) >= self._flush_every:
                self._flush_locked()
                self._flush_file_locked()

    def _flush_locked(self) -> None:
        if self._f is None:
            raise ValueError(f"history writer for {self.path} is closed")
        if self._buf and self.failed is None:
            try:
                self._f.write("\n".join(self._buf))
                self._f.write("\n")
            except OSError as exc:  # disk full, read-only, gone
                self._fail(exc)
            finally:
                self._buf.clear()

    def _fail(self, exc: OSError) -> None:
        self.failed = exc
        if self.on_failure is not None:
            self.on_failure(exc)

    def _flush_file_locked(self) -> None:
        assert self._f is not None
        try:
            self._f.flush()
        except OSError as exc:
            if self.failed is None:
                self._fail(exc)

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()
            self._flush_file_locked()

    def close(self) -> None:
        with self._lock:
            if self._f is None:
                return
            self._flush_locked()
            try:
                self._f.close()
            except OSError as exc:  # the buffered tail could not be written either
                if self.failed is None:
                    self._fail(exc)
            self._f = None

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _compact_encoder() -> Callable[[Any], str]:
    """``json.dumps(o, separators=(",", ":"), default=_jsonable)``, the same text, with the C
    encoder built once: ``JSONEncoder.encode`` builds it again for every call, which was
    a third of the cost of writing an op record (measured: 7.1 -> 4.5 µs per op)."""
    if c_make_encoder is None:  # pragma: no cover - CPython always has the C accelerator
        return json.JSONEncoder(separators=(",", ":"), default=_jsonable).encode
    encode = c_make_encoder(None, _jsonable, encode_basestring_ascii, None, ":", ",", False, False, True)
    join = "".join
    return lambda o: join(encode(o, 0))


def _jsonable(o: Any) -> Any:
    """Fallback encoder: sets/tuples to lists, bytes to str, else repr."""
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, bytes):
        return o.decode("utf-8", "backslashreplace")
    return repr(o)


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield parsed JSON lines; an unparseable line yields ``{"type": "bad"}``."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                yield {"type": "bad"}


def read_history(path: str | Path) -> History:
    """Load ``history.jsonl`` into typed records (tolerates a torn last line)."""
    ops: list[Op] = []
    events: list[Event] = []
    meta: dict[str, Any] = {}
    bad = 0
    for rec in iter_records(path):
        kind = rec.get("type")
        if kind == "op":
            ops.append(Op.from_json(rec))
        elif kind == "event":
            events.append(Event.from_json(rec))
        elif kind == "meta":
            meta = rec
        else:
            bad += 1
    return History(ops, events, meta, bad)
