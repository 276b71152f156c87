"""Pure checks of the topology description and generated files (no Redis)."""
from __future__ import annotations

import pytest

from labcommon.errors import LabError, UnknownNameError
from topologies import compose_gen, config
from topologies.spec import TOPOLOGIES, Options, build_spec


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_ports_are_unique_and_outside_the_ephemeral_range(name: str) -> None:
    ports = build_spec(name).ports()
    assert len(ports) == len(set(ports))
    assert all(1024 < p < 32768 for p in ports)


def test_topologies_use_disjoint_ports() -> None:
    seen: set[int] = set()
    for name in TOPOLOGIES:
        ports = set(build_spec(name).ports()) - {18474}
        assert not ports & seen
        seen |= ports


def test_node_counts() -> None:
    assert [n.kind for n in build_spec("single").nodes] == ["redis"]
    sentinel = build_spec("sentinel")
    assert len(sentinel.redis_nodes) == 3 and len(sentinel.sentinels) == 3 and sentinel.quorum == 2
    cluster = build_spec("cluster")
    assert len(cluster.redis_nodes) == 6 and all(n.bus_port for n in cluster.redis_nodes)
    redlock = build_spec("redlock")
    assert [n.port for n in redlock.redis_nodes] == [7301, 7302, 7303, 7304, 7305]
    assert [n.direct_port for n in redlock.redis_nodes] == [17301, 17302, 17303, 17304, 17305]
    assert all(n.initial_role == "primary" and n.replica_of is None for n in redlock.nodes)


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_node_source_addresses_are_distinct_loopback_addresses(name: str) -> None:
    """Partitions match a node's outgoing packets by its bind-source-addr: distinct per
    node and inside faults.netfilter.NODE_SOURCES (127.0.1.0/24)."""
    import ipaddress

    from faults.netfilter import NODE_SOURCES

    sources = [n.source_addr for n in build_spec(name).nodes]
    assert len(set(sources)) == len(sources)
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(NODE_SOURCES) for a in sources)


def test_unknown_topology_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="accepted: single, sentinel, cluster, redlock"):
        build_spec("triangle")


def test_absurd_options_are_refused() -> None:
    with pytest.raises(LabError, match="down_after_ms"):
        build_spec("sentinel", Options(down_after_ms=5))


def test_replicas_announce_their_proxied_port() -> None:
    spec = build_spec("sentinel")
    replica = spec.node("redis-2")
    args = config.redis_args(replica, spec, bind="127.0.0.1", data_dir="/d", logfile="l")
    assert args[args.index("--replica-announce-port") + 1] == str(replica.port)
    assert args[args.index("--replicaof") + 2] == str(spec.node("redis-1").port)  # through the proxy
    assert args[args.index("--port") + 1] == str(replica.direct_port)


def test_cluster_nodes_announce_proxied_client_and_bus_ports() -> None:
    spec = build_spec("cluster")
    node = spec.node("redis-4")
    args = config.redis_args(node, spec, bind="127.0.0.1", data_dir="/d", logfile="l")
    assert args[args.index("--cluster-announce-port") + 1] == str(node.port)
    assert args[args.index("--cluster-announce-bus-port") + 1] == str(node.bus_port)
    assert args[args.index("--cluster-port") + 1] == str(node.direct_bus_port)


def test_sentinel_config_monitors_the_primary_through_its_proxy() -> None:
    spec = build_spec("sentinel")
    conf = config.sentinel_conf(spec.node("sentinel-1"), spec, "pw", bind="127.0.0.1", data_dir="/d", logfile="l")
    assert f"sentinel monitor lab 127.0.0.1 {spec.node('redis-1').port} 2" in conf
    assert f"sentinel announce-port {spec.node('sentinel-1').port}" in conf
    assert conf.count("known-sentinel") == 2 and conf.count("known-replica") == 2


def test_committed_compose_files_are_current() -> None:
    assert compose_gen.main(["--check"]) == 0


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_compose_binds_published_ports_to_loopback_and_requires_a_password(name: str) -> None:
    compose, _ = compose_gen.render(name)
    published = [line.strip() for line in compose.splitlines() if line.strip().startswith('- "') and ":" in line]
    assert published and all(p.startswith('- "127.0.0.1:') for p in published)
    assert "${REDISLAB_PASSWORD:?" in compose


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_no_password_in_arguments_or_container_environment(name: str) -> None:
    """The password reaches nodes through files (a Compose secret, a 0600 config file), never
    through arguments or environment variables `docker inspect` would show."""
    spec = build_spec(name)
    for node in spec.redis_nodes:
        args = config.redis_args(node, spec, bind="127.0.0.1", data_dir="/d", logfile="l")
        assert not {"--requirepass", "--masterauth"} & set(args)
    compose, _ = compose_gen.render(name)
    assert "REDISCLI_AUTH: " not in compose and " -a " not in compose
    assert "--requirepass" not in compose and "${REDISLAB_PASSWORD}" not in compose
    assert "environment: REDISLAB_PASSWORD" in compose  # the secret's source


def test_auth_conf_quotes_any_password() -> None:
    assert config.auth_conf('p"w\\ x') == 'requirepass "p\\"w\\\\ x"\nmasterauth "p\\"w\\\\ x"\n'
