"""The lab's client settings as one explicit, recorded policy.

Every client the lab builds (``Topology.client``, ``Topology.sentinel``,
``Topology.node_client``; sync and asyncio; plain, Sentinel and Cluster) gets
its timeouts and redis-py ``Retry`` from a ``ClientPolicy``, so an experiment
can write the exact settings into its config (``policy.as_config()``) and a
reader can tell how much of an outage the client itself added.

Why these defaults (measured with ``python -m experiments.bench_failover``):

* ``retries=0``: redis-py 8.1 retries behind the caller's back when nothing is
  said (``Redis()``: 10 retries, 10 ms..1 s jittered backoff; ``RedisCluster``:
  3; every Sentinel connection used for discovery: 10). One call then hides
  seconds of backoff and several attempts. With 0, one call is one attempt and
  whoever retries (the caller, a pattern's ``RetryPolicy``) is the one counted.
* ``socket_timeout_s=0.25``: a hung primary (paused, partitioned) costs one
  timeout per attempt; redis-py's default is none at all (a partitioned Cluster
  node blocks forever) and the Sentinel clients had 1 s.
* ``sentinel_timeout_s=0.25`` with no retry: master discovery asks the Sentinels
  in turn; an unreachable Sentinel costs one timeout, not ten backed-off retries.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio.retry
import redis.retry
from redis.backoff import AbstractBackoff, ExponentialWithJitterBackoff, NoBackoff

from labcommon.errors import LabError
from topologies.layout import HOST, NodeSpec

PROBE_TIMEOUT_S = 0.5  # socket timeout of a single readiness probe


@dataclass(frozen=True)
class ClientPolicy:
    """Timeouts, redis-py retry and pool size of a lab client. Times in seconds.

    ``retries`` are redis-py's own retries *under* one call (0 = one call, one
    attempt); between them it waits ``uniform(0, min(backoff_cap_s,
    backoff_base_s * 2**n))``. On a Cluster client, ``retries`` is the number of
    times one command is re-sent after a connection error (redis-py re-reads the
    slot map each time, without waiting).
    """

    socket_timeout_s: float | None = 0.25  # one reply on an open connection; None = wait forever
    connect_timeout_s: float | None = 0.25  # TCP connect (+ AUTH) to a node; None = socket_timeout_s
    retries: int = 0  # redis-py retries per call, after the first attempt
    backoff_base_s: float = 0.01  # first backoff step (only used when retries > 0)
    backoff_cap_s: float = 0.5  # largest backoff (only used when retries > 0)
    sentinel_timeout_s: float = 0.25  # each query to a Sentinel while discovering the primary
    max_connections: int | None = None  # pool size per node; None = redis-py's (unbounded)

    def __post_init__(self) -> None:
        for name in ("socket_timeout_s", "connect_timeout_s"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 600:
                raise LabError(f"{name}={value} is out of range; accepted: None or 0 < s <= 600")
        if not 0 < self.sentinel_timeout_s <= 600:
            raise LabError(f"sentinel_timeout_s={self.sentinel_timeout_s} is out of range; accepted: 0 < s <= 600")
        if not 0 <= self.retries <= 100:
            raise LabError(f"retries={self.retries} is out of range; accepted: 0..100")
        if not 0 <= self.backoff_base_s <= self.backoff_cap_s <= 60:
            raise LabError(f"backoff {self.backoff_base_s}..{self.backoff_cap_s} s is not valid; "
                           "accepted: 0 <= backoff_base_s <= backoff_cap_s <= 60")
        if self.max_connections is not None and self.max_connections < 1:
            raise LabError(f"max_connections={self.max_connections} is out of range; accepted: None or >= 1")

    def replace(self, **changes: Any) -> ClientPolicy:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    def backoff(self) -> AbstractBackoff:
        if self.retries == 0:
            return NoBackoff()
        return ExponentialWithJitterBackoff(base=self.backoff_base_s, cap=self.backoff_cap_s)

    def retry(self, asyncio: bool = False) -> Any:
        """A fresh redis-py ``Retry`` for this policy (the asyncio flavour for asyncio clients)."""
        cls = redis.asyncio.retry.Retry if asyncio else redis.retry.Retry
        return cls(self.backoff(), self.retries)

    def client_kwargs(self, asyncio: bool = False, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``Redis``, ``Sentinel.master_for`` and ``RedisCluster``:
        this policy's, then ``overrides`` (the caller's own). As in redis-py, a caller who sets
        only ``socket_timeout`` gets it as the connect timeout too."""
        kwargs: dict[str, Any] = {
            "socket_timeout": self.socket_timeout_s,
            "socket_connect_timeout": self.connect_timeout_s if self.connect_timeout_s is not None
            else self.socket_timeout_s,
            "retry": self.retry(asyncio),
        }
        if self.max_connections is not None:
            kwargs["max_connections"] = self.max_connections
        if "socket_timeout" in overrides and "socket_connect_timeout" not in overrides:
            kwargs["socket_connect_timeout"] = overrides["socket_timeout"]
        return {**kwargs, **overrides}

    def sentinel_kwargs(self, asyncio: bool = False) -> dict[str, Any]:
        """Keyword arguments for the connections to the Sentinels themselves (discovery)."""
        return {"socket_timeout": self.sentinel_timeout_s, "socket_connect_timeout": self.sentinel_timeout_s,
                "retry": (redis.asyncio.retry.Retry if asyncio else redis.retry.Retry)(NoBackoff(), 0)}

    def as_config(self) -> dict[str, Any]:
        """The policy as plain JSON (field names carry their unit), for an experiment's config."""
        return dataclasses.asdict(self)


#: What every lab client gets unless the caller passes another policy or explicit kwargs.
DEFAULT_POLICY = ClientPolicy()


def probe_client(node: NodeSpec, password: str, *, direct: bool = False,
                 timeout_s: float = PROBE_TIMEOUT_S) -> redis.Redis:
    """A client for one probe of ``node`` (readiness, roles): through its proxy unless ``direct``,
    ``timeout_s`` seconds per reply, no retry (redis-py 8's default, 10 retries with backoff,
    turns one probe of a dead node into seconds of waiting). Exported as ``health.node_client``."""
    return redis.Redis(host=HOST, port=node.direct_port if direct else node.port, password=password,
                       socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True,
                       retry=redis.retry.Retry(NoBackoff(), 0))
