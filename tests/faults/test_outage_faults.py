"""The outage faults (failover, restart, slow_command, reshard), each seen from a client on both
backends, healed by their own heal and by `redislab heal` from another process."""
from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from faults import kinds, maintenance, stall
from faults.events import FAULT_HEAL, EventLog
from faults.injector import FaultInjector, active_faults, heal_all
from labcommon.errors import LabError
from labcommon.poll import wait_until
from tests.conftest import LabManager
from topologies import api

pytestmark = pytest.mark.integration
REDISLAB = [sys.executable, "-m", "redislab.cli"]


def _client(topo: api.Topology, timeout_s: float, **kw: Any) -> redis.Redis:
    return topo.node_client("redis-1", socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                            retry=Retry(NoBackoff(), 0), decode_responses=True, **kw)


def _run_id(topo: api.Topology, node: str) -> str:
    with topo.node_client(node, direct=True, decode_responses=True) as c:
        return c.info("server")["run_id"]


@pytest.fixture
def single(lab: LabManager, backend: str) -> Iterator[api.Topology]:
    topo = lab("single", backend)
    yield topo
    heal_all(topo)
    assert active_faults() == []


def test_slow_command_lua_gets_busy_replies_until_script_kill(single: api.Topology) -> None:
    with _client(single, 3.0) as c:
        limit = c.config_get("lua-time-limit")["lua-time-limit"]
        fault = kinds.make("slow_command", "redis-1", how="lua", duration_ms=60_000, busy_ms=200)
        log = EventLog()
        with FaultInjector(single, log).active(fault):
            busy = wait_until(lambda: _busy(c), 10, "BUSY replies")
            assert "BUSY" in busy
        assert c.ping() is True  # SCRIPT KILL ended a script that would have run for a minute
        assert c.config_get("lua-time-limit")["lua-time-limit"] == limit
    heal = log.events[-1]
    assert heal.kind == FAULT_HEAL and heal.fields["outcome"]["ended_by"] == "the heal's SCRIPT KILL"
    assert 0 < heal.fields["outcome"]["lasted_s"] < 60


def test_slow_command_says_when_someone_else_killed_the_script(single: api.Topology) -> None:
    """As Sentinel does to a primary it considers down and that answers BUSY: the history must say the
    stall ended before the heal, or a run would be read as a stall held for the whole fault window."""
    log = EventLog()
    with _client(single, 3.0) as c:
        fault = kinds.make("slow_command", "redis-1", how="lua", duration_ms=60_000, busy_ms=200)
        with FaultInjector(single, log).active(fault):
            wait_until(lambda: _busy(c), 10, "BUSY replies")
            c.execute_command("SCRIPT", "KILL")
            wait_until(lambda: _busy(c) is None, 10, "the script ended")
            # the stall's own client reads the "killed" reply a moment after the node answers others:
            # heal only once it did, or the heal's start is taken for the kill's sender
            wait_until(lambda: fault.outcome().get("lasted_s") is not None, 10, "the stall saw its script killed")
    outcome = log.events[-1].fields["outcome"]
    assert outcome["ended_by"].startswith("a SCRIPT KILL sent before the heal"), outcome
    assert 0 < outcome["lasted_s"] < 60 and "error" not in outcome


def _busy(c: redis.Redis) -> str | None:
    try:
        c.ping()
    except redis.ResponseError as exc:
        return str(exc)
    return None


def test_slow_command_debug_sleep_blocks_every_client_until_it_ends(single: api.Topology) -> None:
    with _client(single, 0.3) as c:
        with FaultInjector(single).active(kinds.make("slow_command", "redis-1", how="debug_sleep",
                                                       duration_ms=2000)):
            wait_until(lambda: _times_out(c), 5, "a PING that times out")
        assert c.ping() is True


def _times_out(c: redis.Redis) -> bool:
    try:
        c.ping()
    except redis.TimeoutError:
        return True
    return False


def test_slow_command_keys_scans_a_keyspace_of_its_own_and_drops_it(single: api.Topology) -> None:
    with _client(single, 5.0, db=stall.SCRATCH_DB) as scratch:
        fault = kinds.make("slow_command", "redis-1", how="keys", duration_ms=3000, keys=100_000)
        assert isinstance(fault, kinds.SlowCommand)
        with FaultInjector(single).active(fault):
            wait_until(lambda: fault._stall.calls > 0, 10, "KEYS calls")
            assert scratch.dbsize() >= 100_000
        wait_until(lambda: scratch.dbsize() == 0, 10, "the scratch keyspace dropped (FLUSHDB ASYNC)")


def test_redislab_heal_kills_a_script_left_running_by_a_process_that_exited(single: api.Topology) -> None:
    result = subprocess.run([*REDISLAB, "fault", "slow_command", "--target", "redis-1", "how=lua",
                             "duration_ms=120000", "busy_ms=200"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    with _client(single, 3.0) as c:
        wait_until(lambda: _busy(c), 10, "BUSY replies after the CLI exited")
        result = subprocess.run([*REDISLAB, "heal"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "slow_command" in result.stdout
        assert c.ping() is True
        assert c.config_get("lua-time-limit")["lua-time-limit"] == "5000"
    assert active_faults() == []


def test_restart_stops_and_starts_the_node_with_a_new_process(single: api.Topology) -> None:
    before = _run_id(single, "redis-1")
    fault = kinds.make("restart", "redis-1", down_ms=500)
    with FaultInjector(single).active(fault):
        wait_until(lambda: single.backend.node_state("redis-1") == "stopped", 10, "redis-1 stopped")
    assert single.backend.node_state("redis-1") == "running"
    wait_until(lambda: _run_id(single, "redis-1") != before, 30, "a new redis-1 process answers")
    assert fault.saved["steps"][:2] == ["stop redis-1", "started redis-1"]


def test_failover_is_refused_on_a_single_node(single: api.Topology) -> None:
    with pytest.raises(LabError, match="not a Sentinel or Cluster primary"):
        FaultInjector(single).inject(kinds.make("failover", "redis-1"))
    assert active_faults() == []


def test_sentinel_manual_failover_then_rolling_restart_with_a_failover_hook(lab: LabManager, backend: str) -> None:
    topo = lab("sentinel", backend)
    inj = FaultInjector(topo)
    try:
        old = maintenance.sentinel_primary(topo)
        assert old is not None
        with inj.active(kinds.make("failover", old)):
            new = maintenance.wait_new_primary(topo, old)
        wait_until(lambda: topo.role(old) == "replica", 30, f"{old} demoted")
        ids = {n.name: _run_id(topo, n.name) for n in topo.spec.redis_nodes}
        fault = kinds.make("restart", "all", pause_ms=500, hook="failover")
        with inj.active(fault):
            pass  # heal waits for the round to end
        assert fault.saved["order"][-1] == new  # the primary last
        assert "error" not in fault.saved, fault.saved
        assert maintenance.sentinel_primary(topo) != new  # the hook failed it over before its restart
        for name, run_id in ids.items():
            def restarted(name: str = name, run_id: str = run_id) -> bool:  # mypy infers no lambda with defaults
                return _run_id(topo, name) != run_id
            wait_until(restarted, 30, f"{name} restarted")
    finally:
        heal_all(topo)
    topo.wait_healthy(timeout_s=60)


def test_cluster_failover_modes_and_resharding_under_writes(lab: LabManager, backend: str) -> None:
    topo = lab("cluster", backend)
    inj = FaultInjector(topo)
    rc = topo.client(decode_responses=True, socket_timeout=2)
    tag = f"{{rs-{uuid.uuid4().hex[:6]}}}"
    try:
        for i in range(40):
            rc.set(f"{tag}:{i}", i)
        slot = rc.keyslot(f"{tag}:0")
        owners, _ids = maintenance.slot_owners(topo)
        dst = next(n for n in ("redis-1", "redis-2", "redis-3", "redis-4", "redis-5", "redis-6")
                   if topo.role(n) == "primary" and n != owners[slot])
        with inj.active(kinds.make("reshard", dst, slots=str(slot), batch=4, pause_ms=50)):
            for _ in range(100):
                rc.incr(f"{tag}:0")  # MOVED / ASK followed by the client
        assert maintenance.open_slots(topo) == []
        assert maintenance.slot_owners(topo)[0][slot] == dst
        assert rc.get(f"{tag}:0") == "100" and rc.get(f"{tag}:39") == "39"

        replica = None
        for mode in ("default", "takeover"):
            primary = dst if replica is None else replica
            fault = kinds.make("failover", primary, mode=mode)
            with inj.active(fault):
                replica = fault.saved["replica"]
                wait_until(lambda: topo.role(replica) == "primary" and topo.role(primary) == "replica",  # noqa: B023 - polled here
                           30,
                           f"{replica} promoted ({mode})")
        assert topo.role(dst) == "primary"  # failed over and back
    finally:
        rc.close()
        heal_all(topo)


def test_redislab_heal_finishes_a_migration_whose_injector_was_killed(lab: LabManager, backend: str) -> None:
    topo = lab("cluster", backend)
    rc = topo.client(decode_responses=True, socket_timeout=2)
    tag = f"{{rs-{uuid.uuid4().hex[:6]}}}"
    for i in range(30):
        rc.set(f"{tag}:{i}", i)
    slot = rc.keyslot(f"{tag}:0")
    owners, _ids = maintenance.slot_owners(topo)
    dst = next(n.name for n in topo.spec.redis_nodes if topo.role(n.name) == "primary" and n.name != owners[slot])
    proc = subprocess.Popen([*REDISLAB, "fault", "reshard", "--target", dst, f"slots={slot}", "batch=1",
                             "pause_ms=2000", "--duration", "300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: maintenance.open_slots(topo), 30, "the slot half-moved")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert maintenance.open_slots(topo)  # left half-moved by the dead injector
        result = subprocess.run([*REDISLAB, "heal"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert maintenance.open_slots(topo) == []
        assert maintenance.slot_owners(topo)[0][slot] == dst
        assert [rc.get(f"{tag}:{i}") for i in range(30)] == [str(i) for i in range(30)]
    finally:
        if proc.poll() is None:
            proc.kill()
        rc.close()
        heal_all(topo)
    assert active_faults() == []
