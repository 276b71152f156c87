"""What a failed Redis call means: the one exception classifier of the patterns and the lab.

``classify(exc)`` answers three questions about an exception raised by a Redis call:

* ``name``: the error's type name, as counted in ``errors_by_type`` (a pattern's own
  error wrapping a Redis error is named by both: ``LockUnavailable(TimeoutError)``);
* ``kind``: what it says about the service (down, slow, demoted, refusing, saturated);
* ``effect``: whether the command *did not execute*, *may have executed*
  (indeterminate: Jepsen's ``info``), or *executed and then failed*.

"Did not execute" is claimed only on evidence (redis-py 8.1, read from its source):

* a connect failure: ``ConnectionError("Error 111 connecting to host:port. ...")`` and
  ``TimeoutError("Timeout connecting to server")`` are raised by
  ``connect_check_health`` before anything is written (``connection.py``,
  ``asyncio/connection.py``); a failure of the handshake after the connect (AUTH,
  HELLO) is not told apart from a reply lost on an open connection, so it stays
  indeterminate;
* an error reply the server sends *instead of* running the command (``LOADING``,
  ``READONLY``, ``CLUSTERDOWN``, ``MOVED``, ``TRYAGAIN``, ``NOREPLICAS``, ``BUSY``,
  ``MASTERDOWN``, ``WRONGTYPE`` ...), unless it came out of a script (``@user_script``:
  the script's earlier commands ran) or out of a pipeline (its other commands ran);
* refusals on the client's side: an exhausted pool, no master known to Sentinel, a
  routing error of the cluster client, an open circuit breaker, an argument that
  cannot be encoded.

A connection reset or closed while waiting for the reply, a write error, a timeout
(the client's or an ``asyncio.timeout``), an unknown ``ERR`` reply (a script's
``error_reply`` looks the same) and any exception not listed here: indeterminate.

The verdict is about the attempt that raised. A client that retries internally
(redis-py's ``Retry`` with retries > 0, the lab's ``ClientPolicy.retries``) hides its
earlier attempts: a refused reconnect after a lost reply still says "not executed".
Give measuring clients no internal retries; ``RetryPolicy`` (``patterns.common``)
marks the last error of its own retries with :data:`EARLIER_ATTEMPT_NOTE` when an
earlier attempt may have executed, and ``classify`` honours the mark.
"""

from __future__ import annotations

import copy
import enum
import re
from dataclasses import dataclass

import pybreaker
from redis.exceptions import (
    AskError,
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ClusterCrossSlotError,
    ClusterDownError,
    ClusterError,
    DataError,
    ExecAbortError,
    MaxConnectionsError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
    WatchError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import MasterNotFoundError, SlaveNotFoundError

#: Every exception that means "Redis did not give us an answer". Note that
#: ``RedisClusterException`` (e.g. "cannot connect to any startup node") is NOT
#: a ``RedisError`` subclass, and ``asyncio.timeout`` raises the builtin
#: ``TimeoutError``; both are caught at the pattern boundary.
REDIS_FAILURES: tuple[type[BaseException], ...] = (
    RedisError,
    RedisClusterException,
    TimeoutError,
)

#: Added (``BaseException.add_note``) to the error a retrying caller re-raises when an
#: earlier attempt of the same call may have executed; ``classify`` then never says
#: "not executed".
EARLIER_ATTEMPT_NOTE = "an earlier attempt of this call may have executed"


class ErrorKind(enum.Enum):
    """What a failure says about the service."""

    UNAVAILABLE = "unavailable"  # down, unreachable, loading, failing over, refusing writes for now
    TIMEOUT = "timeout"  # no reply in time
    READONLY = "readonly"  # talked to a demoted primary (failover in progress)
    REJECTED = "rejected"  # the server (or client) refused this command: a bug or a setting, not an outage
    SATURATED = "saturated"  # client pool exhausted: nothing was sent
    BREAKER_OPEN = "breaker_open"  # the circuit breaker refused the call: nothing was sent
    OTHER = "other"  # not a Redis failure (the caller's own error)


class Effect(enum.Enum):
    """Whether the failed command took effect."""

    NOT_EXECUTED = "not_executed"  # evidence that it never ran
    INDETERMINATE = "indeterminate"  # it may have run (reply lost, cut by a deadline, no evidence)
    EXECUTED = "executed"  # it ran, at least in part, and then failed


@dataclass(frozen=True)
class Failure:
    """The classifier's verdict on one exception."""

    name: str
    kind: ErrorKind
    effect: Effect

    @property
    def may_have_executed(self) -> bool:
        """True unless there is evidence that the command did not run."""
        return self.effect is not Effect.NOT_EXECUTED


_NOT_RUN = Effect.NOT_EXECUTED
_MAYBE = Effect.INDETERMINATE

#: Error replies a server sends instead of running the command -> what they say about it.
_REFUSAL_CODES: dict[str, ErrorKind] = {
    "LOADING": ErrorKind.UNAVAILABLE, "BUSY": ErrorKind.UNAVAILABLE, "MASTERDOWN": ErrorKind.UNAVAILABLE,
    "CLUSTERDOWN": ErrorKind.UNAVAILABLE, "TRYAGAIN": ErrorKind.UNAVAILABLE, "MOVED": ErrorKind.UNAVAILABLE,
    "ASK": ErrorKind.UNAVAILABLE, "NOREPLICAS": ErrorKind.UNAVAILABLE, "MISCONF": ErrorKind.UNAVAILABLE,
    "READONLY": ErrorKind.READONLY,
    "OOM": ErrorKind.REJECTED, "WRONGTYPE": ErrorKind.REJECTED, "NOSCRIPT": ErrorKind.REJECTED,
    "NOAUTH": ErrorKind.REJECTED, "WRONGPASS": ErrorKind.REJECTED, "NOPERM": ErrorKind.REJECTED,
    "EXECABORT": ErrorKind.REJECTED, "CROSSSLOT": ErrorKind.REJECTED, "NOGROUP": ErrorKind.REJECTED,
    "BUSYGROUP": ErrorKind.REJECTED, "BUSYKEY": ErrorKind.REJECTED,
}
#: redis-py's classes for replies it parses (it strips the code from the message).
_REFUSAL_CLASSES: tuple[tuple[type[BaseException], ErrorKind], ...] = (
    (ReadOnlyError, ErrorKind.READONLY), (ClusterDownError, ErrorKind.UNAVAILABLE),  # MasterDownError too
    (TryAgainError, ErrorKind.UNAVAILABLE), (AskError, ErrorKind.UNAVAILABLE),  # MovedError too
    (NoScriptError, ErrorKind.REJECTED), (ExecAbortError, ErrorKind.REJECTED),
    (OutOfMemoryError, ErrorKind.REJECTED), (NoPermissionError, ErrorKind.REJECTED),
    (ClusterCrossSlotError, ErrorKind.REJECTED),
)
_PIPELINE = re.compile(r"^Command # (\d+) \(.*?\) of pipeline caused error: ", re.DOTALL)
_SCRIPT = re.compile(r"@user_script|Error running script|\bscript: [0-9a-f]{40}")
_CONNECT = re.compile(r"^Error (\S+ )?connecting to ")


def classify(exc: BaseException) -> Failure:
    """Name, kind and effect of ``exc`` (see the module doc for the evidence used)."""
    failure = _classify(exc)
    if EARLIER_ATTEMPT_NOTE in getattr(exc, "__notes__", ()) and not failure.may_have_executed:
        return Failure(failure.name, failure.kind, Effect.INDETERMINATE)
    return failure


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same command may succeed (outage, timeout, failover)."""
    return isinstance(exc, REDIS_FAILURES) and classify(exc).kind not in (ErrorKind.REJECTED, ErrorKind.OTHER)


def unpipelined(exc: BaseException) -> tuple[int, BaseException] | None:
    """For the error redis-py raises out of a pipeline (the first failing command's, after
    every command ran): that command's number (from 1) and its error as if sent alone, for
    a caller who knows what the pipeline's other commands did. None for any other error."""
    pipelined = _PIPELINE.match(str(exc)) if isinstance(exc, ResponseError) else None
    if pipelined is None:
        return None
    alone = copy.copy(exc)
    alone.args = (str(exc)[pipelined.end():], *exc.args[1:])
    return int(pipelined.group(1)), alone


def _classify(exc: BaseException) -> Failure:
    name = type(exc).__name__
    if isinstance(exc, pybreaker.CircuitBreakerError):
        # pybreaker raises it without calling, or (throw_new_error_on_trip) while handling the
        # error of the call that tripped it: then that call's effect
        ctx = exc.__context__
        effect = _classify(ctx).effect if isinstance(ctx, REDIS_FAILURES) else _NOT_RUN
        return Failure(name, ErrorKind.BREAKER_OPEN, effect)
    if isinstance(exc, ResponseError):
        return _reply(exc, name)
    if isinstance(exc, RedisConnectionError):
        return _connection(exc, name)
    if isinstance(exc, RedisTimeoutError):
        connect = str(exc) == "Timeout connecting to server"
        return Failure(name, ErrorKind.TIMEOUT, _NOT_RUN if connect else _MAYBE)
    if isinstance(exc, TimeoutError):  # asyncio.timeout, socket.timeout
        return Failure(name, ErrorKind.TIMEOUT, _MAYBE)
    if isinstance(exc, ConnectionRefusedError):
        return Failure(name, ErrorKind.UNAVAILABLE, _NOT_RUN)
    if isinstance(exc, OSError):  # reset, broken pipe, EOF: the reply (or the request) was cut
        return Failure(name, ErrorKind.UNAVAILABLE, _MAYBE)
    if isinstance(exc, ClusterError):  # redirections and retries exhausted: some may have run
        return Failure(name, ErrorKind.UNAVAILABLE, _MAYBE)
    if isinstance(exc, RedisClusterException):  # raised while routing, before a command is sent
        return Failure(name, ErrorKind.UNAVAILABLE, _NOT_RUN)
    if isinstance(exc, (DataError, WatchError)):  # argument not encodable; EXEC refused (watched key changed)
        return Failure(name, ErrorKind.REJECTED, _NOT_RUN)
    if isinstance(exc, RedisError):  # InvalidResponse, PubSubError ...
        return Failure(name, ErrorKind.REJECTED, _MAYBE)
    if exc.__cause__ is not None:
        # a pattern's boundary exception (LockUnavailable, GeoUnavailable ...) wrapping the
        # error that caused it: judged by that cause, named by both
        inner = classify(exc.__cause__)
        return Failure(f"{name}({inner.name})", inner.kind, inner.effect)
    return Failure(name, ErrorKind.OTHER, _MAYBE)


def _connection(exc: RedisConnectionError, name: str) -> Failure:
    if isinstance(exc, MaxConnectionsError) or str(exc) == "No connection available.":
        return Failure(name, ErrorKind.SATURATED, _NOT_RUN)  # no connection was handed out
    if isinstance(exc, BusyLoadingError):
        return Failure(name, ErrorKind.UNAVAILABLE, _NOT_RUN)
    if isinstance(exc, (AuthenticationError, AuthorizationError)):  # the handshake, or NOAUTH/WRONGPASS
        return Failure(name, ErrorKind.REJECTED, _NOT_RUN)
    if isinstance(exc, (MasterNotFoundError, SlaveNotFoundError)):  # Sentinel named no node to send to
        return Failure(name, ErrorKind.UNAVAILABLE, _NOT_RUN)
    if isinstance(exc.__context__, ReadOnlyError):  # Sentinel client: "The previous master is now a slave"
        return Failure(name, ErrorKind.READONLY, _NOT_RUN)
    if _CONNECT.match(str(exc)) or str(exc) == "max number of clients reached":
        return Failure(name, ErrorKind.UNAVAILABLE, _NOT_RUN)
    return Failure(name, ErrorKind.UNAVAILABLE, _MAYBE)  # reset, closed, write error: the reply was lost


def _reply(exc: ResponseError, name: str) -> Failure:
    message = str(exc)
    pipelined = _PIPELINE.match(message)
    if pipelined:  # see unpipelined()
        message = message[pipelined.end():]
    kind = next((k for cls, k in _REFUSAL_CLASSES if isinstance(exc, cls)), None)
    if kind is None:
        code = exc.status_code if getattr(exc, "status_code", None) else message.split(" ", 1)[0]
        kind = _REFUSAL_CODES.get(str(code))
    if _SCRIPT.search(message):  # raised inside a script: its earlier commands ran
        return Failure(name, kind or ErrorKind.REJECTED, Effect.EXECUTED)
    if kind is None:  # "ERR ...": a plain command's refusal, or a script's error_reply after its writes
        return Failure(name, ErrorKind.REJECTED, _MAYBE)
    # refused instead of running; in a pipeline the other commands ran
    return Failure(name, kind, Effect.EXECUTED if pipelined else _NOT_RUN)
