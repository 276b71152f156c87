"""What Redis saw: every node's INFO sampled into the history while a workload runs.

A background thread polls each data node on its *direct* port (so a toxic or a
partition on the proxies does not blind the sampler) every ``interval_s`` seconds
and writes ``server_info`` events (role, memory, evictions, hits/misses, ops/s,
clients, replication offset and lag) and a ``role`` event whenever a node's role
changes (a failover on the timeline). A node that does not answer within the
probe timeout is recorded with ``up: False``.
"""
from __future__ import annotations

import threading
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from experiments.history import HistoryWriter
from topologies.api import Topology

FIELDS = ("used_memory", "maxmemory", "evicted_keys", "keyspace_hits", "keyspace_misses",
          "instantaneous_ops_per_sec", "connected_clients", "total_commands_processed")
PROBE_TIMEOUT_S = 0.25


def sample_node(client: redis.Redis) -> dict[str, Any]:
    """One INFO sample of a node, reduced to the fields reports use."""
    info = client.info()
    role = "primary" if info.get("role") == "master" else "replica"
    out: dict[str, Any] = {"up": True, "role": role, **{f: info.get(f) for f in FIELDS}}
    out["repl_offset"] = info.get("master_repl_offset")
    if role == "replica":
        out["master_link"] = info.get("master_link_status")
        out["last_io_s"] = info.get("master_last_io_seconds_ago")
    else:
        # replication lag as the primary sees it: how many bytes its slowest replica is behind
        replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        out["connected_replicas"] = len(replicas)
        offset = int(info.get("master_repl_offset") or 0)
        out["lag_bytes"] = max((offset - int(r.get("offset", offset)) for r in replicas), default=0)
    return out


class ServerView:
    """Samples every data node of ``topo`` into ``writer`` until stopped (a context manager)."""

    def __init__(self, topo: Topology, writer: HistoryWriter, interval_s: float = 0.5) -> None:
        self.topo = topo
        self.writer = writer
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="server-view", daemon=True)
        self._roles: dict[str, str] = {}
        self.samples = 0

    def __enter__(self) -> ServerView:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        clients = {n.name: self.topo.node_client(n.name, direct=True, socket_timeout=PROBE_TIMEOUT_S,
                                                 socket_connect_timeout=PROBE_TIMEOUT_S, decode_responses=True,
                                                 retry=Retry(NoBackoff(), 0))  # a dead node must not stall sampling
                   for n in self.topo.spec.redis_nodes}
        try:
            while not self._stop.is_set():
                for name, client in clients.items():
                    try:
                        sample = sample_node(client)
                    except (redis.RedisError, OSError) as exc:
                        sample = {"up": False, "error": type(exc).__name__}
                    self.writer.event("server_info", node=name, **sample)
                    role = sample.get("role", "down")
                    if self._roles.get(name) != role:
                        self.writer.event("role", node=name, role=role)
                        self._roles[name] = role
                    self.samples += 1
                self._stop.wait(self.interval_s)
        finally:
            for c in clients.values():
                c.close()
