"""Each topology on each backend: healthy, replicating, failing over, and gone after `down`."""
from __future__ import annotations

import subprocess
import uuid

import pytest
import redis
from redis.cluster import RedisCluster

from labcommon.poll import wait_until
from tests.conftest import LabManager
from topologies import api
from topologies.compose_gen import project_name
from topologies.home import lab_home
from topologies.spec import TOPOLOGIES

pytestmark = pytest.mark.integration


def _read_from_replica(topo: api.Topology, replica: str, key: str, expected: str) -> None:
    with topo.node_client(replica, decode_responses=True, socket_timeout=1) as c:
        wait_until(lambda: c.get(key) == expected, 10, f"{key} on {replica}")


def test_single_comes_up_and_serves(lab: LabManager, backend: str) -> None:
    topo = lab("single", backend)
    key = f"t:{uuid.uuid4()}"
    with topo.client(decode_responses=True) as c:
        assert c.set(key, "v") is True
        assert c.get(key) == "v"
    assert [n.role for n in topo.nodes() if n.name == "redis-1"] == ["primary"]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=topo.spec.node("redis-1").port, password="wrong").ping()


def test_sentinel_write_on_primary_is_read_from_each_replica(lab: LabManager, backend: str) -> None:
    topo = lab("sentinel", backend)
    key, value = f"t:{uuid.uuid4()}", "replicated"
    with topo.client(decode_responses=True, socket_timeout=2) as master:
        master.set(key, value)
    replicas = [n.name for n in topo.nodes() if n.role == "replica"]
    assert len(replicas) == 2
    for name in replicas:
        _read_from_replica(topo, name, key, value)


def _acknowledged_at_once(topo: api.Topology, replicas: int) -> dict[str, int]:
    """Per primary: how many of its ``replicas`` acknowledge a write within 100 ms (WAIT on its
    connection; on the Cluster a key of the primary's own slots)."""
    acked = {}
    for node in topo.nodes():
        if node.role != "primary":
            continue
        if topo.kind.redis_cluster:
            with topo.client() as rc:
                key = _key_on(rc, node.name, topo)
        else:
            key = f"t:{uuid.uuid4()}"
        with topo.node_client(node.name, socket_timeout=2) as c:
            c.set(key, "acknowledged", px=1000)
            acked[node.name] = int(c.wait(replicas, 100))
    return acked


@pytest.mark.parametrize("name", ["sentinel", "cluster"])
def test_a_fresh_topology_has_every_replica_acknowledging_writes(fresh_lab: LabManager, backend: str,
                                                                 name: str) -> None:
    """Healthy means a write is acknowledged at once: a replica's link is up about a second
    before its primary streams to it (the CI failure of a login that needs ``WAIT 1``)."""
    want = 2 if name == "sentinel" else 1  # replicas per primary
    for start in ("first", "second"):  # the second start right after a `down` missed it more often
        topo = fresh_lab(name, backend)
        acked = _acknowledged_at_once(topo, want)
        assert acked and set(acked.values()) == {want}, f"{start} start: {acked}"
        fresh_lab.down()


def test_sentinel_promotes_a_replica_when_the_primary_is_killed(lab: LabManager, backend: str) -> None:
    topo = lab("sentinel", backend)
    old = topo.primary()
    assert old is not None
    topo.kill(old)
    try:
        sentinel = topo.sentinel()

        def promoted() -> str | None:
            _host, port = sentinel.discover_master("lab")
            return next((n.name for n in topo.spec.redis_nodes if n.port == port and n.name != old), None)

        new = wait_until(promoted, 30, "Sentinel failover")
        assert topo.role(new) == "primary"
        key = f"t:{uuid.uuid4()}"
        master = topo.client(decode_responses=True, socket_timeout=1)
        wait_until(lambda: master.set(key, "after-failover"), 15, "write through Sentinel master_for")
        assert master.get(key) == "after-failover"
        master.close()
    finally:
        topo.start(old)
    # the old primary rejoins as a replica of the new one
    wait_until(lambda: topo.role(old) == "replica", 30, f"{old} demoted to replica")


def _named_by(topo: api.Topology, sentinel: str) -> str:
    """The data node ``sentinel`` names as the primary (SENTINEL GET-MASTER-ADDR-BY-NAME)."""
    by_port = {n.port: n.name for n in topo.spec.redis_nodes}
    with topo.node_client(sentinel, socket_timeout=1) as c:
        _host, port = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "lab")
        return by_port[int(port)]


def _fail_over(topo: api.Topology) -> tuple[str, str]:
    """Kill the primary until a Sentinel names a replica that took the role (past that point the old
    primary's return cannot abort the failover), restart the old one (in ``finally``), wait until it
    is demoted, and return (old primary, the primary all three Sentinels then agree on). Not simply
    the first failover's pick: on Docker a second failover sometimes follows a second later (a
    Sentinel judged the new primary down 1 s after the switch and counted its peers' votes about the
    old one, still fresh, as a quorum)."""
    first = topo.primary()
    assert first is not None

    def agreed(sentinels: list[str]) -> str | None:
        names = {_named_by(topo, s) for s in sentinels}
        p = names.pop() if len(names) == 1 else None
        return p if p is not None and p != first and topo.role(p) == "primary" else None

    topo.kill(first)
    try:
        wait_until(lambda: agreed(["sentinel-2"]), 30, "Sentinel failover")
    finally:
        topo.start(first)
    wait_until(lambda: topo.role(first) == "replica", 30, f"{first} demoted to replica")
    every = [s.name for s in topo.spec.sentinels]
    return first, wait_until(lambda: agreed(every), 30, "the Sentinels agreeing on the new primary")


def test_a_promoted_replica_restarted_at_once_comes_back_as_the_primary(fresh_lab: LabManager, backend: str) -> None:
    """A node restarts in the role Sentinel last gave it (its config file, which Sentinel's CONFIG
    REWRITE updates), as a server restarted from its config file does. With its first primary as a
    ``--replicaof`` argument, a promoted replica killed and restarted within down-after-milliseconds
    came back as a replica of its own replica: no primary at all (the CI run of
    empty-primary-restart: MasterNotFoundError for 45 s)."""
    topo = fresh_lab("sentinel", backend)
    _first, new = _fail_over(topo)
    topo.kill(new)
    topo.start(new)  # at once: well within down-after-milliseconds, no failover
    wait_until(lambda: topo.role(new) != "unknown", 10, f"{new} answering")
    assert topo.role(new) == "primary"
    with topo.client(decode_responses=True, socket_timeout=1) as master:
        assert wait_until(lambda: master.set(f"t:{uuid.uuid4()}", "after-restart"), 15, "a write through Sentinel")


def test_a_restarted_sentinel_names_the_current_primary_at_once(fresh_lab: LabManager, backend: str) -> None:
    """A Sentinel restarts from the config file it rewrote (the current primary, its epoch, the
    known replicas), as redis-sentinel restarted from its file does. A fresh file at every container
    start (the Docker backend before) sent a restarted Sentinel back to the first primary, now a
    replica, until its peers' hello messages corrected it: clients asking it were sent to a replica."""
    topo = fresh_lab("sentinel", backend)
    _first, current = _fail_over(topo)
    name = "sentinel-1"
    topo.kill(name)
    topo.start(name)
    assert wait_until(lambda: _named_by(topo, name), 30, f"{name} answering again") == current


def test_redlock_nodes_are_independent_primaries(lab: LabManager, backend: str) -> None:
    topo = lab("redlock", backend)
    clients = topo.client(decode_responses=True, socket_timeout=2)
    assert len(clients) == 5
    key = f"t:{uuid.uuid4()}"
    try:
        for i, c in enumerate(clients):
            assert c.set(key, f"node-{i}") is True
        assert [c.get(key) for c in clients] == [f"node-{i}" for i in range(5)]  # no replication between them
        assert [n.role for n in topo.nodes() if n.name.startswith("redis-")] == ["primary"] * 5
        assert [c.connection_pool.connection_kwargs["port"] for c in clients] == [7301, 7302, 7303, 7304, 7305]
    finally:
        for c in clients:
            c.delete(key)
            c.close()


def _primaries_and_replicas(topo: api.Topology) -> dict[str, str]:
    """replica node name -> its primary's node name, from CLUSTER NODES."""
    by_port = {n.port: n.name for n in topo.spec.redis_nodes}
    with topo.node_client("redis-1", decode_responses=True) as c:
        nodes = c.cluster("NODES")
    ids = {info["node_id"]: by_port[int(addr.split(":")[1].split("@")[0])] for addr, info in nodes.items()}
    return {ids[info["node_id"]]: ids[info["master_id"]] for addr, info in nodes.items()
            if "slave" in info["flags"] and info["master_id"] in ids}


def test_cluster_write_on_each_primary_is_read_from_its_replica(lab: LabManager, backend: str) -> None:
    topo = lab("cluster", backend)
    pairs = _primaries_and_replicas(topo)
    assert len(pairs) == 3
    with topo.client(decode_responses=True) as rc:
        for replica, primary in pairs.items():
            key = _key_on(rc, primary, topo)
            rc.set(key, "v")
            with topo.node_client(replica, decode_responses=True) as c:
                c.execute_command("READONLY")
                def replicated(c: redis.Redis = c, key: str = key) -> bool:  # mypy infers no lambda with defaults
                    return c.get(key) == "v"
                wait_until(replicated, 10, f"{key} on {replica}")


def _key_on(rc: RedisCluster, primary: str, topo: api.Topology) -> str:
    port = topo.spec.node(primary).port
    for i in range(100_000):
        key = f"k{i}"
        if rc.get_node_from_key(key).port == port:
            return key
    raise AssertionError(f"no key maps to {primary}")


def _one_key_per_slot(rc: RedisCluster) -> list[str]:
    keys: dict[int, str] = {}
    i = 0
    while len(keys) < 16384:
        key = f"slot-probe:{i}"
        keys.setdefault(rc.keyslot(key), key)
        i += 1
    return list(keys.values())


def test_cluster_replica_takes_over_when_a_primary_is_killed(lab: LabManager, backend: str) -> None:
    topo = lab("cluster", backend)
    pairs = _primaries_and_replicas(topo)
    replica, primary = next(iter(pairs.items()))
    topo.kill(primary)
    try:
        wait_until(lambda: topo.role(replica) == "primary", 30, f"{replica} promoted")
        # One attempt per call (the lab's ClientPolicy): a client built while the dead node is still in
        # the slot map can fail its first COMMAND on it; a user's code retries the construction, so do we.
        rc = wait_until(lambda: topo.client(decode_responses=True, socket_timeout=1), 30, "a Cluster client")
        keys = _one_key_per_slot(rc)

        def every_slot_writable() -> bool:
            pipe = rc.pipeline(transaction=False)
            for k in keys:
                pipe.set(k, "1")
            return all(pipe.execute())

        wait_until(every_slot_writable, 30, "writes to all 16384 slots")
        rc.close()
    finally:
        topo.start(primary)
    wait_until(lambda: topo.role(primary) == "replica", 30, f"{primary} rejoins as replica")


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_down_leaves_nothing_behind(fresh_lab: LabManager, backend: str, name: str) -> None:
    topo = fresh_lab(name, backend)
    assert topo.backend.owns_anything()
    procs = list(getattr(topo.backend, "procs", {}).values())  # local backend's processes
    assert backend == "docker" or len(procs) == len(topo.spec.nodes) + 1
    fresh_lab.down()
    assert api.current() is None
    assert [p.pid for p in procs if p.alive()] == []
    assert not (lab_home() / "run" / name).exists()
    if backend == "docker":
        project = project_name(name)
        for kind in ("ps -aq", "network ls -q", "volume ls -q"):
            out = subprocess.run(["docker", *kind.split(), "--filter", f"label=com.docker.compose.project={project}"],
                                 capture_output=True, text=True).stdout
            assert out.strip() == "", f"docker {kind} still lists {out!r}"
