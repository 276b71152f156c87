"""What the session service's endpoints return while its Redis primary is killed, slowed
and partitioned, written only against the redislab plugin's public fixtures (``redis_lab``,
``pytester``). Topology: Sentinel (primary + 2 replicas + 3 Sentinels); the backend comes
from --redislab-backend (``make test``: both).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from http_server import serving
from redis.backoff import NoBackoff
from redis.retry import Retry
from session_service import Settings, create_app

from redislab.testing import RedisLab

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.redislab(topology="sentinel")

REDIS_TIMEOUT_S = 0.25  # the service's Redis timeout
SLOW_MS = 300  # injected latency: above that timeout, so a slow primary looks like a dead one
HTTP_TIMEOUT_S = 10.0
OUTAGE_SEEN_S = 5.0  # deadline for the service to notice a fault (a `docker kill` lands asynchronously)
FAILOVER_S = 30.0  # deadline for Sentinel to promote a replica and the service to follow it


@dataclass
class Service:
    """The running service, as its HTTP clients see it."""

    url: str
    http: requests.Session

    def login(self, user: str) -> requests.Response:
        return self.http.post(f"{self.url}/login", json={"user": user}, timeout=HTTP_TIMEOUT_S)

    def me(self, session: str) -> requests.Response:
        return self.http.get(f"{self.url}/me", headers={"X-Session": session}, timeout=HTTP_TIMEOUT_S)

    def search(self, key: str) -> requests.Response:
        return self.http.get(f"{self.url}/search", params={"q": "redis"}, headers={"X-Api-Key": key},
                             timeout=HTTP_TIMEOUT_S)

    def session_of(self, user: str) -> str:
        response = self.login(user)
        assert response.status_code == 200, response.text
        return str(response.json()["session"])


@pytest.fixture
def service(redis_lab: RedisLab) -> Iterator[Service]:
    """The service, configured with the topology's addresses like any deployment."""
    ep = redis_lab.endpoints()
    settings = Settings(nodes=ep.nodes, sentinels=ep.sentinels, master_name=ep.master_name, password=ep.password,
                        redis_timeout_s=REDIS_TIMEOUT_S, sync_replicas=1)
    with serving(create_app(settings)) as url, requests.Session() as http:
        yield Service(url, http)


def test_before_any_fault_everything_is_served_from_redis(service: Service) -> None:
    sid = service.session_of("ana")
    assert service.me(sid).json() == {"user": "ana"}
    assert service.me("no-such-session").status_code == 401
    search = service.search("ana")
    assert search.status_code == 200 and search.headers["X-RateLimit-Source"] == "redis"


def test_slow_primary_sessions_time_out_search_degrades(redis_lab: RedisLab, service: Service) -> None:
    sid = service.session_of("ana")
    with redis_lab.fault("latency", target="primary", latency_ms=SLOW_MS):
        slow = service.me(sid)
        assert slow.status_code == 504, slow.text
        assert slow.json()["detail"] == "TimeoutError"
        search = service.search("ana")
        assert search.status_code == 200 and search.headers["X-RateLimit-Source"] == "local"
    redis_lab.wait_until(lambda: service.me(sid).status_code == 200, OUTAGE_SEEN_S, "sessions served again")
    assert service.search("ana").headers["X-RateLimit-Source"] == "redis"


INNER_TESTS = '''
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

pytestmark = pytest.mark.redislab(topology="sentinel", backend="{backend}")


def test_body_raises_inside_a_fault(redis_lab):
    with redis_lab.fault("latency", target="primary", latency_ms={slow_ms}):
        with pytest.raises(redis.TimeoutError):  # the fault is in place
            redis_lab.client(socket_timeout={timeout}, retry=Retry(NoBackoff(), 0)).ping()
        raise RuntimeError("the test body failed inside the fault")


def test_interrupted_with_a_fault_never_healed_by_the_test(redis_lab):
    redis_lab.pause("primary")  # no with-block, no heal: only the teardown can undo it
    raise KeyboardInterrupt  # what Ctrl-C raises
'''


def test_faults_are_healed_when_the_test_body_raises_or_is_interrupted(redis_lab: RedisLab, pytester: pytest.Pytester,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDISLAB_HOME", str(redis_lab.home))  # pytester moves $HOME: keep the same lab
    pytester.makepyfile(INNER_TESTS.format(backend=redis_lab.backend, slow_ms=SLOW_MS, timeout=REDIS_TIMEOUT_S))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=180)

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*RuntimeError: the test body failed inside the fault*", "*KeyboardInterrupt*"])
    assert redis_lab.active_faults() == []  # nothing left for `redislab heal`
    assert all(node.state == "running" for node in redis_lab.nodes())  # the paused primary resumed
    with redis_lab.client(socket_timeout=REDIS_TIMEOUT_S, retry=Retry(NoBackoff(), 0)) as r:
        assert r.ping()  # no latency left above the timeout


def test_primary_killed_sessions_fail_fast_search_degrades_and_no_acknowledged_login_is_lost(
        redis_lab: RedisLab, service: Service) -> None:
    rec = redis_lab.recorder()
    acked: list[str] = []

    def login(user: str) -> bool:
        """One login, recorded as a write: acknowledged (ok), or not (unknown: it may be stored)."""
        start = rec.clock()
        response = service.login(user)
        if response.status_code != 200:
            assert response.status_code in (503, 504), response.text
            rec.record("add", {"value": None, "user": user}, "unknown", start=start,
                       error=f"HTTP {response.status_code}")
            return False
        sid = response.json()["session"]
        acked.append(sid)
        rec.record("add", {"value": sid}, "ok", start=start, value=sid)
        return True

    def status_unless_ok() -> tuple[int, str] | None:
        response = service.me(acked[0])
        return None if response.status_code == 200 else (response.status_code, response.text)

    assert all(login(f"before-{i}") for i in range(5))
    with redis_lab.kill_primary() as killed:
        status, body = redis_lab.wait_until(status_unless_ok, OUTAGE_SEEN_S, "the service to notice the dead primary")
        assert status == 503, body  # refused at once, not a slow timeout
        assert not login("during-outage")
        search = service.search("ana")
        assert search.status_code == 200 and search.headers["X-RateLimit-Source"] == "local"
        # Sentinel promotes a replica; the service follows it without a restart
        redis_lab.wait_until(lambda: status_unless_ok() is None, FAILOVER_S,
                             "the service to serve sessions from the new primary")
        assert redis_lab.primary() != killed.target
        # logins wait for one replica: acknowledged again once a replica follows the new primary
        redis_lab.wait_until(lambda: login("after-failover"), FAILOVER_S, "logins acknowledged again")
        assert all(login(f"after-{i}") for i in range(4))
    present = [sid for sid in acked if service.me(sid).status_code == 200]
    result = rec.check("lost_writes", final_state={"set": present})
    assert result.verdict == "held", result.explanation
    assert result.metrics["acked"] == len(acked) >= 10
    assert len(rec.history().cycles()) == 1  # the kill and its heal are in the same history


@pytest.mark.skipif(os.geteuid() != 0, reason="a partition needs root (iptables)")
def test_partitioned_primary_times_out_until_the_majority_promotes_a_replica(redis_lab: RedisLab,
                                                                             service: Service) -> None:
    sid = service.session_of("ana")
    with redis_lab.partition("primary") as cut:
        cut_off = service.me(sid)
        assert cut_off.status_code == 504, cut_off.text  # packets dropped: the service waits for its timeout
        search = service.search("ana")
        assert search.status_code == 200 and search.headers["X-RateLimit-Source"] == "local"
        # the majority side promotes a replica while the old primary is still cut off
        redis_lab.wait_until(lambda: service.me(sid).status_code == 200, FAILOVER_S,
                             "the service to serve sessions from the new primary")
        assert redis_lab.primary() != cut.target
        assert service.me(sid).json() == {"user": "ana"}
