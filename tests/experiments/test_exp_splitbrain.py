"""WAIT confirms the write it follows only on the same connection."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio

from experiments.scenarios.splitbrain import NotReplicatedError, sadd_confirmed
from tests.conftest import LabManager
from topologies import api

pytestmark = pytest.mark.integration
KEY = "{wait-test}:set"


class RotatingPool(redis.asyncio.ConnectionPool):
    """Hands out the longest-idle connection (FIFO) instead of the last released one: any pool
    that may give two consecutive commands of one caller different connections (concurrent
    callers, multiplexing clients) behaves like this some of the time."""

    def get_available_connection(self) -> Any:
        if self._available_connections:
            connection = self._available_connections.pop(0)
            self._in_use_connections.add(connection)
            return connection
        return super().get_available_connection()


def test_a_write_no_replica_received_is_never_confirmed(lab: LabManager) -> None:
    # Every pooled connection's last write was replicated; then both replicas are paused, so no new
    # write can be. Sent as two commands, WAIT ran on another connection, whose own writes were all
    # acknowledged, and answered "2 replicas" at once for a write no replica had.
    lab("sentinel", "local")
    topo = api.current()  # the node processes as they are now (earlier runs restarted some)
    assert topo is not None
    primary = topo.primary()
    assert primary is not None
    replicas = [n.name for n in topo.spec.redis_nodes if n.name != primary]
    node = topo.spec.node(primary)

    async def main() -> list[object]:
        pool = RotatingPool(host="127.0.0.1", port=node.port, password=topo.password, socket_timeout=2.0,
                            max_connections=8)
        client = redis.asyncio.Redis(connection_pool=pool)
        try:
            await asyncio.gather(*(sadd_confirmed(client, KEY, f"warm{i}", timeout_ms=2000) for i in range(8)))
            for name in replicas:
                topo.pause(name)
            try:
                out: list[object] = []
                for i in range(8):
                    try:
                        out.append(await sadd_confirmed(client, KEY, f"e{i}", timeout_ms=200))
                    except NotReplicatedError as exc:
                        out.append(exc)
                return out
            finally:
                for name in replicas:
                    topo.resume(name)
        finally:
            await client.delete(KEY)
            await client.aclose()

    outcomes = asyncio.run(main())
    assert all(isinstance(o, NotReplicatedError) for o in outcomes), outcomes
