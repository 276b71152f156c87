"""The lab's client policy and what the client factory builds from it (no Redis: the
clients built here connect lazily)."""
from __future__ import annotations

import json
from typing import Any

import pytest
import redis.asyncio.retry
import redis.retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff

from labcommon.errors import LabError
from topologies.api import Topology
from topologies.clients import DEFAULT_POLICY, ClientPolicy
from topologies.spec import build_spec


def topology(name: str) -> Topology:
    return Topology(build_spec(name), backend=None, password="pw")  # type: ignore[arg-type]  # clients only


def conn_kwargs(client: Any) -> dict[str, Any]:
    return dict(client.connection_pool.connection_kwargs)


@pytest.mark.parametrize("asyncio", [False, True])
@pytest.mark.parametrize("name", ["single", "sentinel"])
def test_default_client_makes_one_attempt_per_call_with_the_policy_timeouts(name: str, asyncio: bool) -> None:
    kw = conn_kwargs(topology(name).client(asyncio=asyncio))
    retry_cls = redis.asyncio.retry.Retry if asyncio else redis.retry.Retry
    assert isinstance(kw["retry"], retry_cls)
    assert kw["retry"].get_retries() == 0  # redis-py 8.1's default here: 10 retries, backoff up to 1 s
    assert kw["socket_timeout"] == DEFAULT_POLICY.socket_timeout_s
    assert kw["socket_connect_timeout"] == DEFAULT_POLICY.connect_timeout_s


@pytest.mark.parametrize("asyncio", [False, True])
def test_sentinel_discovery_asks_each_sentinel_once_with_a_short_timeout(asyncio: bool) -> None:
    sentinel = topology("sentinel").sentinel(asyncio=asyncio)
    assert len(sentinel.sentinels) == 3
    for s in sentinel.sentinels:
        kw = conn_kwargs(s)
        assert kw["retry"].get_retries() == 0  # was redis-py's default: 10 backed-off retries per Sentinel
        assert kw["socket_timeout"] == DEFAULT_POLICY.sentinel_timeout_s
        assert kw["password"] == "pw"


def test_async_cluster_client_carries_the_policy() -> None:
    rc = topology("cluster").client(asyncio=True)  # asyncio RedisCluster connects lazily
    assert rc.retry.get_retries() == 0  # redis-py's default: 3 re-sends per command
    assert rc.connection_kwargs["socket_timeout"] == DEFAULT_POLICY.socket_timeout_s  # default: none at all


def test_explicit_kwargs_override_the_policy() -> None:
    kw = conn_kwargs(topology("sentinel").client(socket_timeout=2.0))
    assert kw["socket_timeout"] == 2.0
    assert kw["retry"].get_retries() == 0


def test_a_policy_with_retries_backs_off_with_jitter() -> None:
    policy = ClientPolicy(retries=2, backoff_base_s=0.02, backoff_cap_s=0.1, max_connections=7)
    kw = conn_kwargs(topology("single").client(policy=policy))
    assert kw["retry"].get_retries() == 2
    assert isinstance(kw["retry"]._backoff, ExponentialWithJitterBackoff)
    assert kw["retry"]._backoff._cap == 0.1
    assert topology("single").client(policy=policy).connection_pool.max_connections == 7
    assert isinstance(DEFAULT_POLICY.backoff(), NoBackoff)


def test_node_client_uses_the_policy_too() -> None:
    kw = conn_kwargs(topology("sentinel").node_client("redis-2", direct=True))
    assert kw["retry"].get_retries() == 0 and kw["socket_timeout"] == DEFAULT_POLICY.socket_timeout_s
    assert kw["port"] == build_spec("sentinel").node("redis-2").direct_port


def test_policy_is_recorded_as_plain_json_with_units() -> None:
    config = json.loads(json.dumps(DEFAULT_POLICY.as_config()))
    assert config == {"socket_timeout_s": 0.25, "connect_timeout_s": 0.25, "retries": 0, "backoff_base_s": 0.01,
                      "backoff_cap_s": 0.5, "sentinel_timeout_s": 0.25, "max_connections": None}


@pytest.mark.parametrize("changes, field", [
    ({"socket_timeout_s": 0}, "socket_timeout_s"),
    ({"retries": -1}, "retries"),
    ({"backoff_base_s": 1.0, "backoff_cap_s": 0.5}, "backoff"),
    ({"sentinel_timeout_s": -2}, "sentinel_timeout_s"),
    ({"max_connections": 0}, "max_connections"),
])
def test_nonsense_settings_are_refused_with_what_is_accepted(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(LabError, match=f"{field}.*accepted"):
        DEFAULT_POLICY.replace(**changes)



def test_a_caller_setting_only_the_socket_timeout_gets_it_for_connecting_too() -> None:
    """redis-py's rule: a 5 s socket timeout must not keep the policy's 0.25 s connect timeout
    (600 connections opened at once need more than that on a loaded machine)."""
    kw = conn_kwargs(topology("single").client(asyncio=True, socket_timeout=5.0))
    assert kw["socket_connect_timeout"] == 5.0
    kw = conn_kwargs(topology("single").client(socket_timeout=5.0, socket_connect_timeout=0.5))
    assert kw["socket_connect_timeout"] == 0.5
