"""What the topology says about itself, recorded into the history as it happens.

* Sentinel: every event each Sentinel publishes on its own pub/sub (``+sdown``,
  ``+odown``, ``+switch-master``, ``+failover-end``, ``+convert-to-slave`` ...),
  received on a ``PSUBSCRIBE *`` connection to its *direct* port (a partition of
  the proxied ports does not blind it). Time = receipt (about 1 ms resolution).
* Every data node: its ``ROLE`` polled every ``poll_s`` (0.1 s) on its direct
  port; each change is an event (``role`` primary / replica / down). On the
  Cluster this is how a promotion is seen (the Cluster has no event channel).

Events are ``topology`` records: ``source`` (node), ``event`` (the channel, or
``role``), ``detail`` (the message), ``resolution_s``; role events also carry
``node`` and ``role``; ``+switch-master`` carries ``promoted`` (the node's name).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from experiments.history import TOPOLOGY, HistoryWriter
from topologies.api import Topology

POLL_S = 0.1  # s between ROLE polls of one node
PROBE_TIMEOUT_S = 0.25
RECONNECT_PAUSE_S = 0.2  # s a pub/sub reader waits after losing its Sentinel before trying again


class EventSink(Protocol):
    """Where events go: a run's ``HistoryWriter``, or ``redislab events`` printing them.
    Called from the recorder's threads."""

    def event(self, kind: str, t: float | None = None, **fields: Any) -> Any: ...


class TopologyEvents:
    """A context manager: records ``topology`` events into ``writer`` while open."""

    def __init__(self, topo: Topology, writer: HistoryWriter | EventSink, poll_s: float = POLL_S) -> None:
        self.topo = topo
        self.writer = writer
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._threads: list[Any] = []
        self._clients: list[redis.Redis] = []
        self._port_names = {n.port: n.name for n in topo.spec.redis_nodes}

    def _client(self, name: str, timeout: float | None) -> redis.Redis:
        c = self.topo.node_client(name, direct=True, socket_timeout=timeout, socket_connect_timeout=PROBE_TIMEOUT_S,
                                  decode_responses=True, retry=Retry(NoBackoff(), 0))
        self._clients.append(c)
        return c

    def __enter__(self) -> TopologyEvents:
        for s in self.topo.spec.sentinels:
            self._subscribe(s.name)
        poller = threading.Thread(target=self._poll_roles, name="topology-roles", daemon=True)
        poller.start()
        self._threads.append(poller)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            if hasattr(t, "stop"):
                t.stop()
            t.join(timeout=2)
        for c in self._clients:
            c.close()

    # -- Sentinel pub/sub ---------------------------------------------------------------------
    def _subscribe(self, sentinel: str) -> None:
        client = self._client(sentinel, timeout=None)
        pubsub = client.pubsub(ignore_subscribe_messages=True)

        def on_message(message: dict[str, Any]) -> None:
            channel, data = str(message.get("channel")), str(message.get("data"))
            fields: dict[str, Any] = {"source": sentinel, "event": channel, "detail": data, "resolution_s": 0.001}
            if channel == "+switch-master":
                parts = data.split()
                if len(parts) >= 5 and parts[4].isdigit():
                    fields["promoted"] = self._port_names.get(int(parts[4]))
            self.writer.event(TOPOLOGY, **fields)

        def on_error(exc: BaseException, ps: Any, thread: Any) -> None:
            # the Sentinel went away (killed, paused): try again shortly; redis-py resubscribes on reconnect
            self._stop.wait(RECONNECT_PAUSE_S)

        try:
            pubsub.psubscribe(**{"*": on_message})
        except (redis.RedisError, OSError) as exc:
            self.writer.event(TOPOLOGY, source=sentinel, event="unreachable", detail=type(exc).__name__,
                              resolution_s=None)
            return
        self._threads.append(pubsub.run_in_thread(sleep_time=0.05, daemon=True, exception_handler=on_error))

    # -- roles ----------------------------------------------------------------------------------
    def _poll_roles(self) -> None:
        clients = {n.name: self._client(n.name, timeout=PROBE_TIMEOUT_S) for n in self.topo.spec.redis_nodes}
        roles: dict[str, str] = {}
        while not self._stop.is_set():
            started = time.monotonic()
            for name, client in clients.items():
                try:
                    reply = client.execute_command("ROLE")
                    role = "primary" if str(reply[0]) == "master" else "replica"
                except (redis.RedisError, OSError):
                    role = "down"
                if roles.get(name) != role:
                    self.writer.event(TOPOLOGY, source=name, event="role", node=name, role=role,
                                      detail=f"{roles.get(name, 'start')} -> {role}", resolution_s=self.poll_s)
                    roles[name] = role
            self._stop.wait(max(0.0, self.poll_s - (time.monotonic() - started)))
