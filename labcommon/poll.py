"""The lab's one poller: call a probe until it answers or a deadline passes (never a bare sleep).

``wait_until`` for plain code, ``wait_until_async`` (same rules) for a coroutine probe on an
event loop; both are one tenacity policy (``Retrying`` / ``AsyncRetrying``). A probe's
exception counts as "not yet" and is quoted on timeout, except the types listed in
``fatal``: those end the wait at once, raised as they are (a child that crashed will not
become ready). On timeout: ``NotReadyError``, one line naming what was awaited and the last
answer.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar, cast

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

from labcommon.errors import NotReadyError

T = TypeVar("T")

HINT = "see the log lines below; `redislab down` cleans up"


def _policy(timeout_s: float, what: str, details: Callable[[], str], interval_s: float,
            fatal: tuple[type[BaseException], ...]) -> dict[str, Any]:
    """tenacity's arguments for a poll: retry a falsy answer or a non-fatal exception every
    ``interval_s`` s; after ``timeout_s`` s (checked after each probe), ``NotReadyError``."""

    def not_yet(exc: BaseException) -> bool:
        return isinstance(exc, Exception) and not isinstance(exc, fatal)

    def give_up(state: RetryCallState) -> NoReturn:
        outcome = state.outcome
        if outcome is None:
            last = "no answer"
        elif outcome.failed:
            exc = outcome.exception()
            last = f"{type(exc).__name__}: {exc}"
        else:
            last = f"not yet ({outcome.result()!r})"
        raise NotReadyError(f"{what} not ready after {timeout_s:.0f} s: {last}", HINT, details())

    return {"retry": retry_if_result(lambda result: not result) | retry_if_exception(not_yet),
            "stop": stop_after_delay(timeout_s), "wait": wait_fixed(interval_s), "retry_error_callback": give_up}


def wait_until(probe: Callable[[], T | None], timeout_s: float, what: str,
               details: Callable[[], str] = lambda: "", interval_s: float = 0.05,
               fatal: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``probe`` every ``interval_s`` seconds until it returns a truthy value (returned) or
    ``timeout_s`` seconds pass (``NotReadyError``; ``details()`` goes below its line).
    The probe is called at least once."""
    # only a truthy answer is returned (a falsy one is retried until the deadline raises)
    return cast(T, Retrying(**_policy(timeout_s, what, details, interval_s, fatal))(probe))


async def wait_until_async(probe: Callable[[], Awaitable[T | None]], timeout_s: float, what: str,
                           details: Callable[[], str] = lambda: "", interval_s: float = 0.05,
                           fatal: tuple[type[BaseException], ...] = ()) -> T:
    """:func:`wait_until` for a coroutine probe: awaits ``probe()`` every ``interval_s`` seconds
    without blocking the event loop. A probe still running at the deadline is not cut: bound
    it yourself (a client's socket timeout)."""
    return cast(T, await AsyncRetrying(**_policy(timeout_s, what, details, interval_s, fatal))(probe))
