"""A test's own operations as a lab history, so the lab's checks can judge them.

    rec = redis_lab.recorder()
    res = await rec.attempt("add", {"value": v}, r.sadd("s", v))      # asyncio client
    res = rec.call("add", {"value": v}, lambda: r.sadd("s", v))        # sync client
    result = rec.check("lost_writes", final_state={"set": sorted(r.smembers("s"))})
    assert result.verdict == "held", result.explanation

Every call becomes one ``Op`` of kind ``workload`` in ``history.jsonl`` (start = intended:
a test issues its operations itself, there is no schedule to lag behind), classified as
the experiments classify theirs (``experiments.workload.classify``): a write that timed
out or lost its connection is ``unknown`` (it may have happened), a read that raised is
``fail``. Faults the test injects through ``redis_lab`` while the recorder is open are
written into the same history as ``fault_inject``/``fault_heal`` events, so the checks
that look at fault windows (``lost_writes`` per cycle, ``during_fault`` ...) work.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from experiments.checks import CheckResult, run_check
from experiments.history import FINAL_STATE, Event, History, HistoryWriter, Op, Outcome, read_history
from experiments.history import OK as OP_OK
from experiments.workload import OpResult, attempt, classify, classify_read


class Recorder:
    """Records operations and fault events into one history file (``path``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = HistoryWriter(path, flush_every=1)
        self.closed = False

    # -- operations --------------------------------------------------------------------------
    def clock(self) -> float:
        """Seconds since the recorder started (the history's time base)."""
        return self._writer.clock()

    async def attempt(self, op: str, args: Any, awaitable: Awaitable[Any], *, read: bool = False,
                      timeout: float | None = None, client: int = 0, node: str | None = None) -> OpResult:
        """Await a Redis call (``timeout`` in seconds), record it, return its ``OpResult``."""
        start = self.clock()
        res = await attempt(op, args, awaitable, timeout=timeout, node=node, read=read)
        self._write(client, res, start)
        return res

    def call(self, op: str, args: Any, fn: Callable[[], Any], *, read: bool = False, client: int = 0,
             node: str | None = None) -> OpResult:
        """Call ``fn()`` (a sync Redis call, or anything that raises on failure), record it,
        return its ``OpResult``. An exception is classified, recorded and not raised."""
        start = self.clock()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a record
            outcome, error = (classify_read if read else classify)(exc)
            res = OpResult(op, args, None, outcome, error, node)
        else:
            res = OpResult(op, args, value, OP_OK, None, node)
        self._write(client, res, start)
        return res

    def record(self, op: str, args: Any, outcome: Outcome, *, start: float, end: float | None = None,
               value: Any = None, error: str | None = None, client: int = 0, node: str | None = None) -> Op:
        """Record an operation judged by the caller (``start``/``end`` from :meth:`clock`)."""
        res = OpResult(op, args, value, outcome, error, node)
        return self._write(client, res, start, end)

    def _write(self, client: int, res: OpResult, start: float, end: float | None = None) -> Op:
        end = self.clock() if end is None else end
        op = Op(client, res.op, res.args, start, start, end, self._writer.wall_at(start), res.outcome,
                res.value, res.error, res.node)
        self._writer.write_op(op)
        return op

    # -- events -----------------------------------------------------------------------------
    def event(self, kind: str, **fields: Any) -> None:
        """Record an event now (e.g. ``breaker``, ``final_state``)."""
        self._writer.event(kind, **fields)

    @property
    def t0(self) -> float:
        """The ``time.monotonic()`` value that this history's time 0 stands for."""
        return self._writer.t0

    def write_event(self, event: Event) -> None:
        """Write an event stamped on this history's clock (a fault injector's, through
        ``faults.events.EventLog``, as the experiments record theirs); ignored once closed."""
        if not self.closed:
            self._writer.write_event(event)

    # -- reading and judging ------------------------------------------------------------------
    def history(self) -> History:
        """Everything recorded so far."""
        if not self.closed:
            self._writer.flush()
        return read_history(self.path)

    def check(self, name: str, final_state: Mapping[str, Any] | None = None, **params: Any) -> CheckResult:
        """Run the lab's check ``name`` (see ``experiments.checks.REGISTRY``) on the history.

        ``final_state`` is what the test read back at the end (e.g. ``{"set": [...]}`` for
        ``lost_writes``); it is recorded as a ``final_state`` event. Without it, the
        ``final_state`` events recorded so far are used. A check that crashes is ``unknown``;
        an unknown name raises (listing the known ones)."""
        if final_state is not None:
            self.event(FINAL_STATE, **final_state)
        history = self.history()
        return run_check(name, history, history.final_state(), params)

    def close(self) -> None:
        """Flush and close the file (at the test's teardown); :meth:`history` still reads it."""
        self._writer.close()
        self.closed = True
