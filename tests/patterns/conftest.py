"""Fixtures for the pattern tests.

``app_client_factory`` is parametrized over the "single" and "cluster"
topologies and yields a zero-argument factory of fresh ``redis.asyncio``
clients (keyword arguments are passed to the client). Each test builds its
client inside its own ``asyncio.run`` and closes it with ``await c.aclose()``,
and uses a uuid key prefix instead of FLUSHALL.

Topologies come from the session fixture ``lab`` in tests/conftest.py (local
backend: the patterns do not depend on how Redis is run).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

DEFAULT_SOCKET_TIMEOUT_S = 5.0  # must exceed any XREADGROUP BLOCK used in tests
# redis-py's asyncio pool holds 100 connections by default and raises
# MaxConnectionsError (not waits) beyond that; tests gather hundreds of calls.
DEFAULT_MAX_CONNECTIONS = 1000


@pytest.fixture(scope="session", params=["single", "cluster"])
def pattern_topology(request: pytest.FixtureRequest) -> str:
    """Session-scoped so pytest groups tests by topology: the lab switches
    topology (a restart) at most once per session instead of per test."""
    return str(request.param)


@pytest.fixture
def app_client_factory(request: pytest.FixtureRequest, pattern_topology: str) -> Iterator[Callable[..., Any]]:
    topo = request.getfixturevalue("lab")(pattern_topology)

    def factory(**kwargs: Any) -> Any:
        kwargs.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT_S)
        kwargs.setdefault("max_connections", DEFAULT_MAX_CONNECTIONS)
        return topo.client(asyncio=True, **kwargs)

    factory.topology = pattern_topology  # type: ignore[attr-defined]  # exposed on the fixture function for the tests
    factory.topo = topo  # type: ignore[attr-defined]  # exposed on the fixture function for the tests
    yield factory


@pytest.fixture
def prefix() -> str:
    """Unique key prefix for one test (hash-tag free; patterns add their own tags)."""
    return f"t{uuid.uuid4().hex[:12]}"
