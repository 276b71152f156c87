"""The lab's one poller: call a probe until it answers or a deadline passes (never a bare sleep)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from labcommon.errors import NotReadyError

T = TypeVar("T")


def wait_until(probe: Callable[[], T | None], timeout_s: float, what: str,
               details: Callable[[], str] = lambda: "", interval_s: float = 0.05) -> T:
    """Call ``probe`` until it returns a truthy value or ``timeout_s`` seconds pass.

    Exceptions from the probe count as "not yet"; the last one is quoted on timeout.
    """
    deadline = time.monotonic() + timeout_s
    last: str = "no answer"
    while True:
        try:
            result = probe()
            if result:
                return result
            last = f"not yet ({result!r})"
        except Exception as exc:  # noqa: BLE001 - readiness: any failure means "not yet"
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise NotReadyError(f"{what} not ready after {timeout_s:.0f} s: {last}",
                                "see the log lines below; `redislab down` cleans up", details())
        time.sleep(interval_s)
