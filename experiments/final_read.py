"""The one way a scenario reads its final state: retried while the failure is transient.

A run's last read comes right after the last heal, when a failover may still be settling:
a pooled connection the old primary closed ("Connection closed by server"), a node still
loading its data, a Cluster slot map one move behind. Each of those is an outage, not an
answer, so the read is retried (tenacity, jittered exponential waits up to 0.5 s) until
``timeout_s``; a server's error reply (a bug) is raised at once. Every failure met on the way
is named in ``errors`` so the report can say what the read went through.

    members = await settled_read(lambda: client.smembers(key), errors=errors)
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_delay, wait_random_exponential

from patterns.common import is_transient

T = TypeVar("T")
FINAL_READ_TIMEOUT_S = 30.0  # s: keep retrying the final read this long (a failover may still settle)
WAIT_MULTIPLIER_S = 0.05  # s: first wait between attempts (then up to WAIT_MAX_S, jittered)
WAIT_MAX_S = 0.5  # s


def transient_or_cause(exc: BaseException) -> bool:
    """``is_transient`` for the exception or, for a pattern's own error, the Redis error it wraps."""
    return is_transient(exc) or (exc.__cause__ is not None and is_transient(exc.__cause__))


async def settled_read(read: Callable[[], Awaitable[T]], timeout_s: float = FINAL_READ_TIMEOUT_S,
                       errors: list[str] | None = None,
                       retry_on: Callable[[BaseException], bool] = transient_or_cause) -> T:
    """``await read()``, retried while it fails with a ``retry_on`` error, until ``timeout_s``
    seconds; then the last error is raised. Failures are appended to ``errors`` (class names)."""

    def note(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if errors is not None and exc is not None:
            cause = exc.__cause__ if exc.__cause__ is not None and not is_transient(exc) else exc
            errors.append(type(cause).__name__)

    async for attempt in AsyncRetrying(retry=retry_if_exception(retry_on), reraise=True,
                                       stop=stop_after_delay(timeout_s), before_sleep=note,
                                       wait=wait_random_exponential(multiplier=WAIT_MULTIPLIER_S, max=WAIT_MAX_S)):
        with attempt:
            return await read()
    raise AssertionError("unreachable: tenacity re-raises the last error")
