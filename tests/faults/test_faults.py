"""Every fault's effect observed from a client, on both backends, and always healed."""
from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from faults import kinds, netfilter, ownership
from faults.events import FAULT_HEAL, FAULT_INJECT, EventLog
from faults.injector import FaultInjector, active_faults, heal_all
from faults.toxiproxy_api import ToxiproxyAPI
from labcommon.poll import wait_until
from tests.conftest import LabManager
from tests.procs import default_sigint
from topologies import api

pytestmark = pytest.mark.integration
REDISLAB = [sys.executable, "-m", "redislab.cli"]


def _ping_ms(c: redis.Redis, n: int = 15) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        c.ping()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def _assert_clean(topo: api.Topology) -> None:
    tox = ToxiproxyAPI()
    assert not any(tox.toxics().values()) and tox.disabled() == []
    assert netfilter.Netfilter(topo.backend.netns_pid()).rule_count() == 0
    assert active_faults() == []
    assert all(topo.backend.node_state(n.name) == "running" for n in topo.spec.nodes)


@pytest.fixture
def single(lab: LabManager, backend: str) -> Iterator[api.Topology]:
    topo = lab("single", backend)
    yield topo
    heal_all(topo)
    _assert_clean(topo)


def test_latency_shows_up_as_added_latency_and_heals(single: api.Topology) -> None:
    events = EventLog()
    inj = FaultInjector(single, events)
    with single.client(socket_timeout=5) as c:
        before = _ping_ms(c)
        with inj.active(kinds.make("latency", "redis-1", latency_ms=200)):
            during = _ping_ms(c, 5)
        after = _ping_ms(c)
    assert during >= before + 150  # generous margin: injected 200 ms
    assert after < during / 2
    assert [e.kind for e in events.events] == [FAULT_INJECT, FAULT_HEAL]
    assert events.events[0].t <= events.events[1].t and events.events[0].wall > 0


def test_down_refuses_connections_then_recovers(single: api.Topology) -> None:
    with FaultInjector(single).active(kinds.make("down", "redis-1")), pytest.raises(redis.ConnectionError):
        single.client(socket_connect_timeout=1).ping()
    with single.client(socket_timeout=2) as c:
        assert c.ping()


def test_timeout_stalls_a_request_until_the_client_timeout(single: api.Topology) -> None:
    with single.client(socket_timeout=0.5) as c:
        c.ping()
        with FaultInjector(single).active(kinds.make("timeout", "redis-1")):
            started = time.monotonic()
            with pytest.raises(redis.TimeoutError):
                c.execute_command("PING")
            assert time.monotonic() - started >= 0.4


def test_pause_stalls_then_resumes(single: api.Topology) -> None:
    inj = FaultInjector(single)
    with single.client(socket_timeout=0.5) as c:
        with inj.active(kinds.make("pause", "redis-1")):
            assert single.backend.node_state("redis-1") == "paused"
            with pytest.raises(redis.TimeoutError):
                c.execute_command("PING")
        wait_until(lambda: c.ping(), 10, "PING after resume")


def test_kill_errors_then_recovers_after_restart(single: api.Topology) -> None:
    key = f"t:{uuid.uuid4()}"
    c = single.client(socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True)
    c.set(key, "before-kill")
    with FaultInjector(single).active(kinds.make("kill", "redis-1")), pytest.raises(redis.ConnectionError):
        c.ping()
    wait_until(lambda: c.ping(), 15, "PING after restart")
    # AOF is off by default: a killed node restarts empty, and that loss is visible
    assert c.get(key) is None
    c.close()


def test_memory_pressure_refuses_writes_with_noeviction_and_restores(single: api.Topology) -> None:
    with single.node_client("redis-1", direct=True, decode_responses=True) as c:
        before = (c.config_get("maxmemory")["maxmemory"], c.config_get("maxmemory-policy")["maxmemory-policy"])
        with FaultInjector(single).active(kinds.make("memory", "redis-1", maxmemory_mb=1, policy="noeviction")):
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                for i in range(2000):
                    c.set(f"fill:{i}", "x" * 1024)
        assert (c.config_get("maxmemory")["maxmemory"], c.config_get("maxmemory-policy")["maxmemory-policy"]) == before
        c.set("after-heal", "ok")
        c.delete(*[f"fill:{i}" for i in range(2000)])


def test_client_pause_stops_and_resumes_a_client_process(single: api.Topology) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    ownership.register_client(child.pid, "test-client")  # the lab signals only its registered clients
    try:
        fault = kinds.make("client_pause", f"pid:{child.pid}")
        with FaultInjector(single).active(fault):
            wait_until(lambda: _proc_state(child.pid) == "T", 5, "client stopped")
        wait_until(lambda: _proc_state(child.pid) in ("S", "R"), 5, "client resumed")
    finally:
        child.kill()
        child.wait()


def _proc_state(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2]


def test_bad_fault_input_is_one_clear_line(single: api.Topology) -> None:
    for args, fragment in (
        (["fault", "earthquake", "--target", "redis-1"], "unknown fault 'earthquake'; accepted: kill"),
        (["fault", "latency", "--target", "redis-9", "latency_ms=10"], "unknown node or link 'redis-9'"),
        (["fault", "latency", "--target", "redis-1", "latency_ms=-5"], "out of range; accepted: 0..60000 ms"),
        (["fault", "latency", "--target", "redis-1", "lag=5"], "unknown parameter of latency 'lag'"),
        (["fault", "latency", "--target", "redis-1"], "latency_ms (ms) is required"),
    ):
        result = subprocess.run([*REDISLAB, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result
        assert fragment in result.stderr.splitlines()[0]


def test_heal_restores_a_clean_state_after_the_injector_died(single: api.Topology) -> None:
    # inject from a separate process that then exits without healing
    for args in (["latency", "--target", "redis-1", "latency_ms=300"], ["down", "--target", "redis-1@a"],
                 ["pause", "--target", "redis-1"]):
        assert subprocess.run([*REDISLAB, "fault", *args], capture_output=True, timeout=60).returncode == 0
    assert len(active_faults()) == 3
    result = subprocess.run([*REDISLAB, "heal"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    _assert_clean(single)


def test_sigint_in_the_middle_of_a_fault_leaves_nothing_behind(single: api.Topology) -> None:
    proc = subprocess.Popen([*REDISLAB, "fault", "latency", "--target", "redis-1", "latency_ms=500",
                             "--duration", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    tox = ToxiproxyAPI()
    wait_until(lambda: tox.toxics().get("redis-1"), 30, "latency toxic present")
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err
    _assert_clean(single)


def test_sentinel_split_brain_old_primary_acks_minority_writes_then_is_demoted(lab: LabManager, backend: str) -> None:
    """Jepsen 2013: primary + client A | replicas + Sentinels + client B."""
    topo = lab("sentinel", backend)
    old = topo.primary()
    assert old is not None
    others = [n.name for n in topo.spec.redis_nodes if n.name != old]
    sides = f"{old},@a|{','.join(others)},sentinel-1,sentinel-2,sentinel-3,@b"
    client_a = topo.node_client(old, group="a", socket_timeout=1, decode_responses=True)
    sentinel_b = topo.sentinel(group="b")
    key = f"jepsen:{uuid.uuid4()}"
    inj = FaultInjector(topo)
    try:
        with inj.active(kinds.make("partition", sides)):
            new_port = wait_until(lambda: (p := sentinel_b.discover_master("lab")[1]) != topo.spec.node(old).port + 2000
                                  and p, 30, "majority side promotes a replica")
            assert client_a.set(key, "acknowledged-by-old-primary") is True  # minority primary still acks
            assert client_a.info("replication")["role"] == "master"
            with topo.node_client(old, group="b", socket_timeout=0.5, socket_connect_timeout=0.5,
                                  retry=Retry(NoBackoff(), 0)) as b_to_old:
                with pytest.raises((redis.TimeoutError, redis.ConnectionError)):
                    b_to_old.ping()  # client B is cut from the old primary, both ways
            client_b = topo.client(group="b", socket_timeout=1, decode_responses=True)
            wait_until(lambda: client_b.set(f"{key}:b", "ok"), 15, "client B writes to the new primary")
            assert new_port != topo.spec.node(old).group_port("b")
        wait_until(lambda: topo.role(old) == "replica", 40, f"{old} demoted after healing")
        with topo.client(socket_timeout=1, decode_responses=True) as c:
            wait_until(lambda: c.get(f"{key}:b") == "ok", 10, "B's write survives")
            assert c.get(key) is None  # A's acknowledged write is lost
    finally:
        client_a.close()
        heal_all(topo)
    _assert_clean(topo)


def test_cluster_isolating_a_primary_promotes_its_replica(lab: LabManager, backend: str) -> None:
    topo = lab("cluster", backend)
    by_port = {n.port: n.name for n in topo.spec.redis_nodes}
    with topo.node_client("redis-1", decode_responses=True) as c:
        nodes = c.cluster("NODES")
    ids = {info["node_id"]: by_port[int(addr.split(":")[1].split("@")[0])] for addr, info in nodes.items()}
    replica, primary = next((ids[i["node_id"]], ids[i["master_id"]]) for i in nodes.values()
                            if "slave" in i["flags"])
    try:
        with FaultInjector(topo).active(kinds.make("partition", primary)):
            with topo.node_client(primary, socket_timeout=0.5, socket_connect_timeout=0.5,
                                  retry=Retry(NoBackoff(), 0)) as client:
                with pytest.raises((redis.TimeoutError, redis.ConnectionError)):
                    client.ping()  # clients are cut from the isolated node too
            wait_until(lambda: topo.role(replica) == "primary", 30, f"{replica} promoted")
            assert topo.role(primary) == "primary"  # the isolated one still believes it is primary
        wait_until(lambda: topo.role(primary) == "replica", 30, f"{primary} rejoins as replica")
    finally:
        heal_all(topo)
    _assert_clean(topo)
