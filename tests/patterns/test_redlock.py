"""Redlock on the redlock topology (5 independent primaries behind Toxiproxy), on each
backend: majority acquire with nodes killed, and the Kleppmann case (a holder paused
past its validity, then writing after the next holder)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from faults import kinds, ownership
from faults.injector import FaultInjector, heal_all
from patterns.lock import LockTimeout, LockUnavailable
from patterns.redlock import Redlock, aclose_all
from topologies import api

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redlock_topo(lab: Any, backend: str) -> Any:
    topo = lab("redlock", backend)
    yield topo
    heal_all(topo)  # restarts killed nodes, resumes paused processes


def _clients(topo: api.Topology) -> list[Any]:
    return topo.client(asyncio=True, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))


def test_majority_acquire_survives_two_dead_nodes_but_not_three(redlock_topo: api.Topology, prefix: str) -> None:
    injector = FaultInjector(redlock_topo)

    async def main() -> None:
        clients = _clients(redlock_topo)
        try:
            lock = Redlock(clients, f"{prefix}:res", ttl_ms=5_000, instance_timeout_ms=200)
            rival = Redlock(clients, f"{prefix}:res", ttl_ms=5_000, instance_timeout_ms=200)
            lease = await lock.acquire(timeout_s=1)
            assert lease.granted == 5 and lease.is_valid()
            assert await lock.release(lease) == 5

            for node in ("redis-1", "redis-2"):
                await asyncio.to_thread(injector.inject, kinds.make("kill", node))
            lease = await lock.acquire(timeout_s=2)
            assert lease.granted == 3  # a majority of 5
            with pytest.raises(LockTimeout):  # still mutually exclusive on the 3 survivors
                await rival.acquire(timeout_s=0.5)
            assert await lock.release(lease) == 3

            await asyncio.to_thread(injector.inject, kinds.make("kill", "redis-3"))
            with pytest.raises(LockUnavailable, match="3 of 5 nodes failed"):
                await lock.acquire(timeout_s=1)
            assert await lock.holders() == [None] * 5  # the minority grants were released
            assert lock.counters["node_errors"] > 0
        finally:
            await aclose_all(clients)

    asyncio.run(main())


def test_a_holder_paused_past_its_validity_lets_a_second_client_in(redlock_topo: api.Topology, prefix: str,
                                                                  tmp_path: Path) -> None:
    """Kleppmann's case, with the lab's client_pause fault (SIGSTOP of the holder's
    process): A holds the lock and is stopped mid-section for longer than its TTL;
    B acquires on a majority and writes; A resumes and writes too. Redlock has no
    fencing token, so nothing refuses A's late write."""
    injector = FaultInjector(redlock_topo)
    resource = tmp_path / "resource.txt"
    resource.touch()
    name = f"{prefix}:doc"
    cfg = {"ports": [n.port for n in redlock_topo.spec.redis_nodes], "password": redlock_topo.password,
           "name": name, "ttl_ms": 1_000, "work_s": 0.5, "resource": str(resource)}
    holder = subprocess.Popen([sys.executable, "-m", "tests.patterns.redlock_holder", json.dumps(cfg)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        acquired = json.loads(holder.stdout.readline())
        assert acquired["granted"] == 5
        ownership.register_client(holder.pid, "redlock-holder")  # the lab signals only its registered clients
        pause = kinds.make("client_pause", f"pid:{holder.pid}")
        injector.inject(pause)  # A stops in the middle of its work, holding the lock

        async def second_client() -> None:
            clients = _clients(redlock_topo)
            try:
                lock_b = Redlock(clients, name, ttl_ms=5_000, instance_timeout_ms=200)
                lease_b = await lock_b.acquire(timeout_s=5)  # once A's keys expire (1 s TTL)
                assert lease_b.granted == 5 and lease_b.is_valid()
                with resource.open("a") as f:
                    f.write("B\n")
                injector.heal(pause)  # A resumes, still "inside" its section
                await asyncio.to_thread(holder.wait, 10)
                assert await lock_b.release(lease_b) == 5  # B held it all along: two holders at once
            finally:
                await aclose_all(clients)

        asyncio.run(second_client())
        wrote = json.loads(holder.stdout.readline())
        assert resource.read_text().splitlines() == ["B", "A"]  # the stale holder wrote after the new one
        assert wrote == {"wrote": True, "valid_at_write": False}  # its own clock knew, it did not look
    finally:
        heal_all(redlock_topo)
        holder.kill()
        holder.wait(5)
