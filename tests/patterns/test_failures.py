"""The one exception classifier (``patterns.failures``): hand-made exceptions, and the ones a
real redis-py client raises against a closed port and against a server that closes the
connection after reading the command. No Redis: a tiny TCP server on an ephemeral port."""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
from collections.abc import Iterator

import pybreaker
import pytest
import redis
import redis.asyncio
import redis.exceptions as rex
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from experiments.workload import classify as classify_op
from labcommon.poll import wait_until
from patterns.common import Counters, RetryPolicy
from patterns.failures import EARLIER_ATTEMPT_NOTE, Effect, ErrorKind, Failure, classify, is_transient, unpipelined
from patterns.lock import DistributedLock, LockUnavailable

NOT_RUN, MAYBE, RAN = Effect.NOT_EXECUTED, Effect.INDETERMINATE, Effect.EXECUTED


class _Hangup(socketserver.BaseRequestHandler):
    """Reads what the client sends (one chunk), records it, closes: the reply is lost."""

    def handle(self) -> None:
        data = self.request.recv(65536)
        with self.server.lock:  # type: ignore[attr-defined]  # set by the fixture
            self.server.received.append(data)  # type: ignore[attr-defined]  # set by the fixture


class HangupServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hangup)
        self.received: list[bytes] = []
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def got(self, needle: bytes) -> bool:
        with self.lock:
            return any(needle in r for r in self.received)


@pytest.fixture
def hangup() -> Iterator[HangupServer]:
    server = HangupServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# no handshake (HELLO, CLIENT SETINFO): the first thing sent is the command itself
CLIENT_KW = {"socket_timeout": 2, "socket_connect_timeout": 2, "retry": Retry(NoBackoff(), 0), "driver_info": None,
             "protocol": 2}


def _async_client(port: int) -> redis.asyncio.Redis:
    kw = {**CLIENT_KW, "retry": redis.asyncio.retry.Retry(NoBackoff(), 0)}
    return redis.asyncio.Redis(host="127.0.0.1", port=port, **kw)  # type: ignore[arg-type]  # a mixed-type kwargs dict


async def _async_set(port: int) -> BaseException:
    client = _async_client(port)
    try:
        await client.set("victim-key", "v")
    except Exception as exc:  # noqa: BLE001 - the exception is what the test looks at
        return exc
    finally:
        await client.aclose()
    raise AssertionError("SET succeeded")


def _sync_set(port: int) -> BaseException:
    with redis.Redis(host="127.0.0.1", port=port, **CLIENT_KW) as client:  # type: ignore[arg-type]  # mixed-type kwargs
        try:
            client.set("victim-key", "v")
        except Exception as exc:  # noqa: BLE001 - the exception is what the test looks at
            return exc
    raise AssertionError("SET succeeded")


def _raise(port: int, flavour: str) -> BaseException:
    return asyncio.run(_async_set(port)) if flavour == "asyncio" else _sync_set(port)


@pytest.mark.parametrize("flavour", ["asyncio", "sync"])
def test_a_refused_connect_did_not_execute(closed_port: int, flavour: str) -> None:
    exc = _raise(closed_port, flavour)
    assert isinstance(exc, rex.ConnectionError), repr(exc)
    assert classify(exc) == Failure("ConnectionError", ErrorKind.UNAVAILABLE, NOT_RUN)
    assert classify_op(exc) == ("fail", "ConnectionError")
    assert is_transient(exc)


@pytest.mark.parametrize("flavour", ["asyncio", "sync"])
def test_a_connection_closed_after_the_command_was_sent_may_have_executed(hangup: HangupServer, flavour: str) -> None:
    exc = _raise(hangup.port, flavour)
    assert hangup.got(b"victim-key"), "the server never saw the SET: the test proves nothing"
    assert isinstance(exc, rex.ConnectionError), repr(exc)
    failure = classify(exc)
    assert failure == Failure("ConnectionError", ErrorKind.UNAVAILABLE, MAYBE)
    assert failure.may_have_executed
    assert classify_op(exc) == ("unknown", "ConnectionError")
    assert is_transient(exc)


def test_a_lock_attempt_whose_reply_was_lost_is_released_in_the_background(hangup: HangupServer) -> None:
    """The acquire script reached the server and the connection closed before the reply: the
    lock may be ours. acquire gives up (LockUnavailable) and must release that token."""

    async def main() -> tuple[str, bytes]:
        client = _async_client(hangup.port)
        lock = DistributedLock(client, "lost-reply", ttl_ms=2000, retry=RetryPolicy.none())
        try:
            with pytest.raises(LockUnavailable) as raised:
                await lock.acquire(timeout_s=0.3)
            assert isinstance(raised.value.__cause__, rex.ConnectionError)
            await asyncio.gather(*lock._cleanups, return_exceptions=True)  # the background release, if any
            token = next(r for r in hangup.received if lock._acquire.sha.encode() in r).split(b"\r\n")[-4]
            return lock._release_token.sha, token
        finally:
            await client.aclose()

    release_sha, token = asyncio.run(main())
    assert len(token) == 32, token
    wait_until(lambda: any(release_sha.encode() in r and token in r for r in hangup.received), 5,
               "the release of the token whose grant was never answered")


@pytest.mark.parametrize(("exc", "expected"), [
    # connects that failed before anything was written
    (rex.ConnectionError("Error 111 connecting to localhost:6379. Connection refused."),
     Failure("ConnectionError", ErrorKind.UNAVAILABLE, NOT_RUN)),
    (rex.ConnectionError("Error connecting to localhost:6379."),
     Failure("ConnectionError", ErrorKind.UNAVAILABLE, NOT_RUN)),
    (rex.TimeoutError("Timeout connecting to server"), Failure("TimeoutError", ErrorKind.TIMEOUT, NOT_RUN)),
    (ConnectionRefusedError(), Failure("ConnectionRefusedError", ErrorKind.UNAVAILABLE, NOT_RUN)),
    # the reply (or the request) was cut: may have executed
    (rex.ConnectionError("Connection closed by server."), Failure("ConnectionError", ErrorKind.UNAVAILABLE, MAYBE)),
    (rex.ConnectionError("Error while reading from 127.0.0.1:7000 : (104, 'Connection reset by peer')"),
     Failure("ConnectionError", ErrorKind.UNAVAILABLE, MAYBE)),
    (rex.ConnectionError("Error 32 while writing to socket. Broken pipe."),
     Failure("ConnectionError", ErrorKind.UNAVAILABLE, MAYBE)),
    (rex.TimeoutError("Timeout reading from 127.0.0.1:7000"), Failure("TimeoutError", ErrorKind.TIMEOUT, MAYBE)),
    (TimeoutError(), Failure("TimeoutError", ErrorKind.TIMEOUT, MAYBE)),  # asyncio.timeout (asyncio.TimeoutError)
    (ConnectionResetError(), Failure("ConnectionResetError", ErrorKind.UNAVAILABLE, MAYBE)),
    (rex.ClusterError("TTL exhausted."), Failure("ClusterError", ErrorKind.UNAVAILABLE, MAYBE)),
    # refused by the client before sending
    (rex.MaxConnectionsError("Too many connections"), Failure("MaxConnectionsError", ErrorKind.SATURATED, NOT_RUN)),
    (rex.ConnectionError("No connection available."), Failure("ConnectionError", ErrorKind.SATURATED, NOT_RUN)),
    (redis.sentinel.MasterNotFoundError("No master found for 'lab'"),
     Failure("MasterNotFoundError", ErrorKind.UNAVAILABLE, NOT_RUN)),
    (rex.SlotNotCoveredError('Slot "5" is not covered by the cluster.'),
     Failure("SlotNotCoveredError", ErrorKind.UNAVAILABLE, NOT_RUN)),
    (rex.DataError("Invalid input of type: 'dict'"), Failure("DataError", ErrorKind.REJECTED, NOT_RUN)),
    # the server refused to run it
    (rex.BusyLoadingError("Redis is loading the dataset in memory"),
     Failure("BusyLoadingError", ErrorKind.UNAVAILABLE, NOT_RUN)),
    (rex.ReadOnlyError("You can't write against a read only replica."),
     Failure("ReadOnlyError", ErrorKind.READONLY, NOT_RUN)),
    (rex.ClusterDownError("The cluster is down"), Failure("ClusterDownError", ErrorKind.UNAVAILABLE, NOT_RUN)),
    (rex.MasterDownError("Link with MASTER is down"), Failure("MasterDownError", ErrorKind.UNAVAILABLE, NOT_RUN)),
    (rex.TryAgainError("Multiple keys request during rehashing of slot"),
     Failure("TryAgainError", ErrorKind.UNAVAILABLE, NOT_RUN)),
    (rex.MovedError("3999 127.0.0.1:6381"), Failure("MovedError", ErrorKind.UNAVAILABLE, NOT_RUN)),
    (rex.ResponseError("NOREPLICAS Not enough good replicas to write."),
     Failure("ResponseError", ErrorKind.UNAVAILABLE, NOT_RUN)),
    (rex.ResponseError("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."),
     Failure("ResponseError", ErrorKind.UNAVAILABLE, NOT_RUN)),
    (rex.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
     Failure("ResponseError", ErrorKind.REJECTED, NOT_RUN)),
    (rex.NoScriptError("No matching script."), Failure("NoScriptError", ErrorKind.REJECTED, NOT_RUN)),
    # ran, at least in part
    (rex.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value script: "
                       "4d7e3e3e0b6a9d0c4e1f6a2b3c4d5e6f7a8b9c0d, on @user_script:3."),
     Failure("ResponseError", ErrorKind.REJECTED, RAN)),
    (rex.ReadOnlyError("Command # 2 (SADD s x) of pipeline caused error: You can't write against a read only "
                       "replica."), Failure("ReadOnlyError", ErrorKind.READONLY, RAN)),
    # no evidence either way
    (rex.ResponseError("ERR counter overflow"), Failure("ResponseError", ErrorKind.REJECTED, MAYBE)),
    (ValueError("bad reply"), Failure("ValueError", ErrorKind.OTHER, MAYBE)),
    # an open breaker made no call
    (pybreaker.CircuitBreakerError("open"), Failure("CircuitBreakerError", ErrorKind.BREAKER_OPEN, NOT_RUN)),
])
def test_classify(exc: BaseException, expected: Failure) -> None:
    assert classify(exc) == expected


def _raised_while_handling(outer: Exception, inner: Exception, *, cause: bool) -> Exception:
    """``outer`` as raised in an ``except`` block handling ``inner`` (``raise ... from`` if ``cause``)."""
    try:
        try:
            raise inner
        except Exception as e:
            if cause:
                raise outer from e
            raise outer  # noqa: B904 - the implicit context is what is tested
    except Exception as got:  # noqa: BLE001 - returned for the test to look at
        return got
    raise AssertionError("unreachable")


def test_the_sentinel_clients_readonly_rewrite_did_not_execute() -> None:
    # redis-py's SentinelManagedConnection turns READONLY into this ConnectionError
    exc = _raised_while_handling(rex.ConnectionError("The previous master is now a slave"),
                                 rex.ReadOnlyError("You can't write against a read only replica."), cause=False)
    assert classify(exc) == Failure("ConnectionError", ErrorKind.READONLY, NOT_RUN)


def test_a_breaker_error_raised_on_the_trip_is_judged_by_the_call_that_tripped_it() -> None:
    exc = _raised_while_handling(pybreaker.CircuitBreakerError("tripped"), rex.TimeoutError("Timeout reading"),
                                 cause=False)
    assert classify(exc) == Failure("CircuitBreakerError", ErrorKind.BREAKER_OPEN, MAYBE)


def test_a_wrapping_error_is_judged_by_its_cause_and_named_by_both() -> None:
    exc = _raised_while_handling(LockUnavailable("gave up"), rex.ConnectionError("Connection closed by server."),
                                 cause=True)
    assert classify(exc) == Failure("LockUnavailable(ConnectionError)", ErrorKind.UNAVAILABLE, MAYBE)
    assert classify_op(exc) == ("unknown", "LockUnavailable(ConnectionError)")


def test_outages_are_transient_and_refusals_are_not() -> None:
    assert is_transient(rex.ResponseError("NOREPLICAS Not enough good replicas to write."))
    assert is_transient(rex.ResponseError("BUSY Redis is busy running a script."))
    assert is_transient(rex.ReadOnlyError("READONLY")) and is_transient(TimeoutError())
    assert not is_transient(rex.ResponseError("WRONGTYPE Operation against a key"))
    assert not is_transient(rex.AuthenticationError("invalid password"))
    assert not is_transient(ValueError()) and not is_transient(pybreaker.CircuitBreakerError())


def test_a_retried_call_whose_earlier_attempt_may_have_executed_never_reports_not_executed() -> None:
    """First attempt: the reply was lost (it may have run); second: the reconnect was refused.
    The refusal alone would say "not executed": the retry policy marks it."""
    errors = [rex.ConnectionError("Connection closed by server."),
              rex.ConnectionError("Error 111 connecting to 127.0.0.1:7000. Connection refused.")]

    async def op() -> None:
        raise errors.pop(0)

    policy = RetryPolicy(attempts=2, base_s=0.001, cap_s=0.001, deadline_s=None)
    with pytest.raises(rex.ConnectionError) as raised:
        asyncio.run(policy.run(op, Counters([])))
    assert EARLIER_ATTEMPT_NOTE in raised.value.__notes__
    assert classify(raised.value).effect is MAYBE
    assert classify_op(raised.value) == ("unknown", "ConnectionError")


def test_retries_of_calls_that_never_ran_still_report_not_executed() -> None:
    async def op() -> None:
        raise rex.ConnectionError("Error 111 connecting to 127.0.0.1:7000. Connection refused.")

    policy = RetryPolicy(attempts=3, base_s=0.001, cap_s=0.001, deadline_s=None)
    with pytest.raises(rex.ConnectionError) as raised:
        asyncio.run(policy.run(op, Counters([])))
    assert classify(raised.value).effect is NOT_RUN


def test_a_pipeline_error_can_be_judged_alone_by_a_caller_who_knows_the_pipeline() -> None:
    exc = rex.ResponseError("Command # 1 (SADD s a-1) of pipeline caused error: NOREPLICAS Not enough good "
                            "replicas to write.")
    assert classify(exc) == Failure("ResponseError", ErrorKind.UNAVAILABLE, RAN)  # WAIT (#2) ran after it
    failed = unpipelined(exc)
    assert failed is not None and failed[0] == 1
    assert classify(failed[1]) == Failure("ResponseError", ErrorKind.UNAVAILABLE, NOT_RUN)
    assert unpipelined(rex.ResponseError("NOREPLICAS Not enough good replicas to write.")) is None
