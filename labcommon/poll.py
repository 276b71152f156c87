"""The lab's one poller: call a probe until it answers or a deadline passes (never a bare sleep).

``wait_until`` for plain code, ``wait_until_async`` (same rules) for a coroutine probe on an
event loop. A probe's exception counts as "not yet" and is quoted on timeout, except the
types listed in ``fatal``: those end the wait at once, raised as they are (a child that
crashed will not become ready). On timeout: ``NotReadyError``, one line naming what was
awaited and the last answer.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from labcommon.errors import NotReadyError

T = TypeVar("T")

HINT = "see the log lines below; `redislab down` cleans up"


class _Deadline:
    """The shared bookkeeping of both pollers: the deadline, the last answer, the timeout error."""

    def __init__(self, timeout_s: float, what: str, details: Callable[[], str]) -> None:
        self.end = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.what = what
        self.details = details
        self.last = "no answer"

    def answered(self, result: object) -> None:
        self.last = f"not yet ({result!r})"

    def failed(self, exc: Exception) -> None:
        self.last = f"{type(exc).__name__}: {exc}"

    def check(self) -> None:
        """Raise ``NotReadyError`` once the deadline has passed."""
        if time.monotonic() >= self.end:
            raise NotReadyError(f"{self.what} not ready after {self.timeout_s:.0f} s: {self.last}", HINT,
                                self.details())


def wait_until(probe: Callable[[], T | None], timeout_s: float, what: str,
               details: Callable[[], str] = lambda: "", interval_s: float = 0.05,
               fatal: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``probe`` every ``interval_s`` seconds until it returns a truthy value (returned) or
    ``timeout_s`` seconds pass (``NotReadyError``; ``details()`` goes below its line).
    The probe is called at least once."""
    deadline = _Deadline(timeout_s, what, details)
    while True:
        try:
            result = probe()
            if result:
                return result
            deadline.answered(result)
        except fatal:
            raise
        except Exception as exc:  # noqa: BLE001 - readiness: any other failure means "not yet"
            deadline.failed(exc)
        deadline.check()
        time.sleep(interval_s)


async def wait_until_async(probe: Callable[[], Awaitable[T | None]], timeout_s: float, what: str,
                           details: Callable[[], str] = lambda: "", interval_s: float = 0.05,
                           fatal: tuple[type[BaseException], ...] = ()) -> T:
    """:func:`wait_until` for a coroutine probe: awaits ``probe()`` every ``interval_s`` seconds
    without blocking the event loop. A probe still running at the deadline is not cut: bound
    it yourself (a client's socket timeout)."""
    deadline = _Deadline(timeout_s, what, details)
    while True:
        try:
            result = await probe()
            if result:
                return result
            deadline.answered(result)
        except fatal:
            raise
        except Exception as exc:  # noqa: BLE001 - readiness: any other failure means "not yet"
            deadline.failed(exc)
        deadline.check()
        await asyncio.sleep(interval_s)
