"""Circuit breaker for asyncio code, on top of pybreaker 1.4.

pybreaker is synchronous, but ``CircuitBreaker.calling()`` is a context
manager whose internal lock is released before the body runs, so

    with breaker.calling():
        await redis_call()

records the awaited call's outcome without holding a lock across ``await``.
Behaviour worth knowing (pybreaker 1.4.1, read from its source):

* The state only moves from ``open`` to ``half-open`` when a call is
  attempted after ``reset_timeout``; nothing happens on a timer.
* ``half-open`` in pybreaker lets *every* concurrent call through until the
  first outcome arrives: under load, many trial calls hit a still-sick Redis at
  once, each paying a full timeout. ``AsyncBreaker`` gates it: one trial call at
  a time, the others are rejected (and fall back) until the trial's outcome.
* Exceptions listed in ``exclude`` count as *successes* (the server answered).
  We exclude everything that is not a Redis failure, so a bug in our own code
  does not open the breaker. A cancelled call (``CancelledError``, usually the
  caller's own deadline on a slow Redis) counts as a failure.
* ``throw_new_error_on_trip=False``: the call that trips the breaker raises
  its own Redis error (counted by type), later calls raise
  ``CircuitBreakerError`` (counted as rejections).
* Stragglers: pybreaker judges a call's outcome with the state object captured
  when the call *started*. Under load, calls that started while the breaker was
  closed and fail after it tripped would each call ``open()`` again (an
  ``open -> open`` transition that also restarts the open period: 20 in-flight
  timeouts gave 17 spurious transitions). ``AsyncBreaker`` hands pybreaker only
  the outcomes of calls that started in the breaker's current state; a
  straggler's failure is raised to its caller and counted in ``stragglers``,
  so there is one transition per state change and the open period runs from
  the first trip.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pybreaker

from patterns.failures import REDIS_FAILURES

T = TypeVar("T")

StateListener = Callable[[str, str], None]  # (old_state, new_state)

CircuitBreakerError = pybreaker.CircuitBreakerError


@dataclass(frozen=True)
class Transition:
    """One breaker state change; ``at_monotonic_s`` for intervals, ``at_wall_s`` to line up with other logs."""

    at_monotonic_s: float
    at_wall_s: float
    old: str
    new: str


class _Recorder(pybreaker.CircuitBreakerListener):
    def __init__(self, sink: Callable[[str, str], None]) -> None:
        self._sink = sink

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: pybreaker.CircuitBreakerState | None,
                     new_state: pybreaker.CircuitBreakerState) -> None:
        self._sink(old_state.name if old_state is not None else "none", new_state.name)


class AsyncBreaker:
    """A pybreaker ``CircuitBreaker`` plus a transition log and listeners."""

    def __init__(self, fail_max: int = 5, reset_timeout_s: float = 5.0, name: str = "redis") -> None:
        self.transitions: list[Transition] = []
        self._listeners: list[StateListener] = []
        self._trial_in_flight = False
        self.stragglers = 0  # failures of calls that started before the last state change (not fed to pybreaker)
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout_s,
            exclude=[_not_a_redis_failure],
            listeners=[_Recorder(self._on_change)],
            name=name,
            throw_new_error_on_trip=False,
        )

    def _on_change(self, old: str, new: str) -> None:
        self.transitions.append(Transition(time.monotonic(), time.time(), old, new))
        for listener in list(self._listeners):
            listener(old, new)

    def add_listener(self, listener: StateListener) -> None:
        """``listener(old_state, new_state)`` is called on every transition."""
        self._listeners.append(listener)

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"`` (as stored; see module notes)."""
        return self.breaker.current_state

    async def call(self, op: Callable[[], Awaitable[T]]) -> T:
        """Await ``op()`` through the breaker; raises ``CircuitBreakerError`` when open, and
        in half-open while another call is the trial."""
        if self._trial_in_flight:
            raise CircuitBreakerError("half-open: a trial call is already in flight")
        straggler: BaseException | None = None
        with self.breaker.calling():
            # no await between the check above and here: asyncio cannot interleave another call
            trial = self.breaker.current_state == "half-open"
            self._trial_in_flight = trial
            epoch = len(self.transitions)  # the state this call started in
            try:
                return await op()
            except BaseException as exc:
                if len(self.transitions) == epoch or _not_a_redis_failure(exc):
                    raise
                # the breaker changed state while this call was in flight: its failure says nothing
                # about the current state; leaving the block normally keeps it from pybreaker
                straggler = exc
            finally:
                if trial:
                    self._trial_in_flight = False
        self.stragglers += 1
        raise straggler


def _not_a_redis_failure(exc: BaseException) -> bool:
    return not isinstance(exc, (*REDIS_FAILURES, asyncio.CancelledError))
