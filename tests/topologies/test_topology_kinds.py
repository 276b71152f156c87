"""The topology kinds registry: every kind module complete and registered once (no Redis)."""
from __future__ import annotations

import inspect
import pkgutil
from importlib import import_module
from typing import Any

import pytest
from redis.crc import key_slot

from labcommon.errors import UnknownNameError
from topologies import compose_gen, topology_kinds
from topologies.spec import TOPOLOGIES, build_spec
from topologies.topology_kinds.base import TopologyKind
from topologies.topology_kinds.cluster import READINESS_KEY, key_on

_TYPES = {"name": str, "summary": str, "block": int, "fails_over": bool, "has_sentinels": bool,
          "redis_cluster": bool, "on_kubernetes": bool}


def problems(name: str, kind: Any) -> list[str]:
    """What kind ``kind`` (an instance, or a class that could not be instantiated), registered as
    ``name``, lacks; empty when it is complete."""
    cls = kind if isinstance(kind, type) else type(kind)
    if not issubclass(cls, TopologyKind):
        return [f"{name}: {kind!r} is not a TopologyKind"]
    out = []
    for attr in TopologyKind.REQUIRED:
        value = getattr(kind, attr, None)
        if not isinstance(value, _TYPES[attr]):
            out.append(f"{name}: class attribute {attr} missing or not a {_TYPES[attr].__name__}")
    if getattr(kind, "name", None) != name:
        out.append(f"{name}: registered under another name than its own ({getattr(kind, 'name', None)!r})")
    missing = sorted(cls.__abstractmethods__)
    if missing:
        out.append(f"{name}: does not implement {', '.join(missing)}")
    return out


def test_every_registered_kind_is_complete() -> None:
    assert tuple(_TYPES) == TopologyKind.REQUIRED
    found = [p for name, kind in topology_kinds.KINDS.items() for p in problems(name, kind)]
    assert found == []


def test_an_incomplete_kind_is_reported() -> None:
    class Half(TopologyKind):  # no summary, no flags, no readiness/client/primary_of
        name = "half"
        block = 9

        def nodes(self) -> Any:
            return ()

        def redis_args(self, node: Any, spec: Any, host_of: Any) -> list[str]:
            return []

    with pytest.raises(TypeError):
        Half()  # type: ignore[abstract]  # the point: an incomplete kind cannot even be made
    found = problems("half", Half)
    assert any("summary" in p for p in found) and any("fails_over" in p for p in found)
    assert any("client" in p and "primary_of" in p and "readiness" in p for p in found)
    assert problems("other", topology_kinds.get("single")) == [
        "other: registered under another name than its own ('single')"]


def test_every_kind_module_is_registered_once() -> None:
    """One module per kind, each defining KIND, and that object on its registry line."""
    package = topology_kinds.__path__
    modules = sorted(m.name for m in pkgutil.iter_modules(package) if m.name != "base")
    assert modules == sorted(topology_kinds.KINDS)
    for name in modules:
        module = import_module(f"topologies.topology_kinds.{name}")
        assert topology_kinds.KINDS[name] is module.KIND
        own = [c for _n, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, TopologyKind) and c is not TopologyKind and c.__module__ == module.__name__]
        assert own == [type(module.KIND)]


def test_kinds_have_distinct_port_blocks_and_build_their_specs() -> None:
    blocks = [k.block for k in topology_kinds.KINDS.values()]
    assert len(set(blocks)) == len(blocks)
    assert TOPOLOGIES == topology_kinds.names() == tuple(topology_kinds.KINDS)
    for name, kind in topology_kinds.KINDS.items():
        spec = build_spec(name)
        assert spec.nodes == kind.nodes() and spec.redis_nodes
        assert bool(spec.sentinels) == kind.has_sentinels
        assert all((n.bus_port is not None) == kind.redis_cluster for n in spec.redis_nodes)
        assert all(n.port // 100 == 70 + kind.block for n in spec.nodes)


def test_only_cluster_kinds_get_a_formation_service() -> None:
    for name, kind in topology_kinds.KINDS.items():
        compose, _tox = compose_gen.render(name)
        assert ("cluster-init:" in compose) == kind.redis_cluster


def test_unknown_kind_is_one_line_listing_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as err:
        topology_kinds.get("triangle")
    line = str(err.value)
    assert line == ("unknown topology 'triangle'; accepted: single, sentinel, cluster, redlock "
                    "(hint: try: redislab up sentinel)")
    assert "\n" not in line
    with pytest.raises(UnknownNameError, match=r"^unknown topology 'kinds'"):
        build_spec("kinds")


def test_each_kind_builds_its_own_client_through_the_group_proxies() -> None:
    """The kind's client factory (no Redis: these clients connect lazily)."""
    import redis
    import redis.sentinel

    from topologies.api import Topology

    def topology(name: str) -> Topology:
        return Topology(build_spec(name), backend=None, password="pw")  # type: ignore[arg-type]  # clients only

    single = topology("single").client(group="a")
    assert isinstance(single, redis.Redis) and single.connection_pool.connection_kwargs["port"] == 8001
    redlock = topology("redlock").client(group="b")
    assert [c.connection_pool.connection_kwargs["port"] for c in redlock] == [9301, 9302, 9303, 9304, 9305]
    sentinel = topology("sentinel").client(group="a")
    assert isinstance(sentinel.connection_pool, redis.sentinel.SentinelConnectionPool)
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinel.connection_pool.sentinel_manager.sentinels
            ] == [8111, 8112, 8113]


@pytest.mark.parametrize("ranges", [[["0", "5460"]], [["5461", "10922"], ["12000"]], [["16383"]], [["7"]]])
def test_the_cluster_readiness_key_lands_in_the_primarys_own_slots(ranges: list[list[str]]) -> None:
    key = key_on(ranges)
    assert key.startswith(READINESS_KEY)
    assert any(int(r[0]) <= key_slot(key.encode()) <= int(r[-1]) for r in ranges)
