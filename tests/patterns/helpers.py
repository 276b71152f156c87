"""Helpers shared by the pattern tests."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from faults.injector import heal_all
from patterns.common import prepare_client


def closed_port() -> int:
    """A local TCP port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port_client(**kwargs: Any) -> redis.asyncio.Redis:
    """A client whose every command fails fast with ConnectionError. The
    client's own retry is off: redis-py 8.1's default (10 retries, 10 ms..1 s
    backoff) takes about 5 s per command against a dead server."""
    kwargs.setdefault("retry", Retry(NoBackoff(), 0))
    kwargs.setdefault("socket_connect_timeout", 0.5)
    kwargs.setdefault("socket_timeout", 0.5)
    return redis.asyncio.Redis(host="127.0.0.1", port=closed_port(), **kwargs)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, interval_s: float = 0.02
) -> None:
    """Poll ``check`` until it returns True or ``timeout_s`` passes (AssertionError)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(interval_s)


async def open_client(factory: Callable[..., Any], **kwargs: Any) -> Any:
    """A fresh client from ``factory``, initialised (cluster) before concurrent use."""
    return await prepare_client(factory(**kwargs))


def outage_faults(topo: Any) -> list[Any]:
    """Toxiproxy ``down`` on every Redis node's client proxy: connections refused and
    existing ones dropped, as in an outage (or the moment of a failover) seen by a client."""
    from faults import kinds

    return [kinds.make("down", n.name) for n in topo.spec.redis_nodes]


def no_retry_client(factory: Callable[..., Any], **kwargs: Any) -> Any:
    """A client whose own retry is off and timeouts short, so a fault shows up at once
    and the pattern's ``RetryPolicy`` is the only retry (redis-py 8.1's default retries
    10 times with up to 1 s backoff)."""
    kwargs.setdefault("retry", Retry(NoBackoff(), 0))
    kwargs.setdefault("socket_timeout", 1.0)
    kwargs.setdefault("socket_connect_timeout", 0.5)
    return factory(**kwargs)


def run_healed(topo: Any, body: Coroutine[Any, Any, None]) -> None:
    """Run a test's async body, then heal every fault on ``topo`` whatever it did."""
    try:
        asyncio.run(body)
    finally:
        heal_all(topo)
