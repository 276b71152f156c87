"""What the ``redis_lab`` fixture yields: the running topology, its clients and addresses,
faults as context managers, and recorders for the test's own operations.

    def test_checkout_survives_a_slow_primary(redis_lab):
        with redis_lab.fault("latency", target="primary", latency_ms=300):
            ...                                  # healed when the block exits
        redis_lab.kill_primary()                 # healed at the latest at the test's teardown

A fault is injected when the method is called and healed when its ``with`` block exits,
when ``.heal()`` is called, or at the test's teardown (``RedisLab.heal``), whichever
comes first, also when the test failed or was interrupted. Every fault goes through
``faults.injector.FaultInjector``, which records it before injecting it, so even a
killed test process leaves nothing that ``redislab heal`` cannot undo.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from faults import kinds
from faults.events import EventLog
from faults.injector import FaultInjector, active_faults
from labcommon.poll import wait_until
from redislab.testing import targets
from redislab.testing.recorder import Recorder
from topologies.api import NodeStatus, Topology
from topologies.spec import HOST, MASTER_NAME

T = TypeVar("T")
Address = tuple[str, int]


@dataclass(frozen=True)
class Endpoints:
    """How an application reaches the topology (addresses through Toxiproxy, so faults apply).

    ``nodes``: every data node (single: one; cluster: the startup nodes); ``sentinels`` and
    ``master_name`` for the sentinel topology (empty / None otherwise)."""

    topology: str
    password: str
    nodes: tuple[Address, ...]
    sentinels: tuple[Address, ...] = ()
    master_name: str | None = None

    @property
    def url(self) -> str:
        """``redis://`` URL of the first data node (without the password)."""
        host, port = self.nodes[0]
        return f"redis://{host}:{port}/0"


class ActiveFault:
    """A fault this test injected: heal it with ``.heal()`` or by leaving its ``with`` block."""

    def __init__(self, fault: kinds.Fault, heal: Callable[[ActiveFault], None]) -> None:
        self.fault = fault
        self._heal = heal
        self.healed = False

    @property
    def kind(self) -> str:
        return self.fault.kind

    @property
    def target(self) -> str:
        """The resolved target (a node or link name, never ``primary``)."""
        return self.fault.target

    def heal(self) -> None:
        """Undo the fault (idempotent)."""
        if not self.healed:
            self._heal(self)

    def __enter__(self) -> ActiveFault:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.heal()

    def __repr__(self) -> str:
        return f"<{self.fault!r}{' healed' if self.healed else ' active'}>"


class RedisLab:
    """One test's view of the lab: the topology (shared by the session) and what the test did."""

    def __init__(self, topology: Topology, home: Path, history_dir: Callable[[], Path]) -> None:
        self.topology = topology
        self.home = home  # the lab home in use ($REDISLAB_HOME): state, faults.json, logs
        self._history_dir = history_dir
        self._faults: list[ActiveFault] = []
        self._recorders: list[Recorder] = []
        self._clients: list[Any] = []
        self._events = EventLog()  # each recorder is added as a sink: faults go into its history
        self._injector = FaultInjector(topology, self._events)
        self._names = itertools.count(1)

    @property
    def name(self) -> str:
        """The topology: single, sentinel or cluster."""
        return self.topology.name

    @property
    def backend(self) -> str:
        """The backend it runs on: local or docker."""
        return str(self.topology.backend.name)

    # -- clients and addresses ------------------------------------------------------------------
    def client(self, asyncio: bool = False, group: str | None = None, **kwargs: Any) -> Any:
        """The client an application would use (``Redis``, ``Sentinel.master_for``, ``RedisCluster``);
        ``group`` "a"/"b" routes it through that client group's proxies. Sync clients are closed
        at teardown; close asyncio ones on their own loop."""
        return self._keep(self.topology.client(asyncio=asyncio, group=group, **kwargs), asyncio)

    def sentinel(self, asyncio: bool = False, group: str | None = None, **kwargs: Any) -> Any:
        """A ``Sentinel`` over the three Sentinels (sentinel topology)."""
        return self.topology.sentinel(asyncio=asyncio, group=group, **kwargs)

    def node_client(self, name: str, asyncio: bool = False, direct: bool = False, group: str | None = None,
                    **kwargs: Any) -> Any:
        """A plain client to one node (``primary`` allowed), through its proxy unless ``direct``."""
        node = targets.resolve(self.topology, name)
        return self._keep(self.topology.node_client(node, asyncio=asyncio, direct=direct, group=group, **kwargs),
                          asyncio)

    def _keep(self, client: Any, asyncio: bool) -> Any:
        if not asyncio:
            self._clients.append(client)
        return client

    def endpoints(self, group: str | None = None) -> Endpoints:
        """The addresses an application is configured with (``group``: client group a/b's ports)."""
        spec = self.topology.spec

        def addr(port: int) -> Address:
            node = next(n for n in spec.nodes if n.port == port)
            return HOST, (node.group_port(group) if group else port)

        return Endpoints(spec.name, self.topology.password, tuple(addr(n.port) for n in spec.redis_nodes),
                         tuple(addr(s.port) for s in spec.sentinels), MASTER_NAME if spec.sentinels else None)

    # -- state ------------------------------------------------------------------------------------
    def primary(self, key: str = targets.DEFAULT_KEY) -> str:
        """The node serving writes now (Sentinel's view; on the Cluster the owner of ``key``'s slot)."""
        return targets.resolve(self.topology, targets.PRIMARY, key)

    def nodes(self) -> list[NodeStatus]:
        """Every node with its role and state (running | paused | stopped)."""
        return self.topology.nodes()

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Return when the topology is healthy again (replicas linked, Sentinels agree ...)."""
        self.topology.wait_healthy(timeout_s=timeout_s)

    @staticmethod
    def wait_until(probe: Callable[[], T | None], timeout_s: float, what: str) -> T:
        """Poll ``probe`` until it returns something truthy (returned) or ``timeout_s`` seconds
        pass (``NotReadyError`` quoting the last answer). Exceptions count as "not yet"."""
        return wait_until(probe, timeout_s, what)

    # -- faults -----------------------------------------------------------------------------------
    def fault(self, kind: str, target: str = targets.PRIMARY, *, key: str = targets.DEFAULT_KEY,
              **params: Any) -> ActiveFault:
        """Inject fault ``kind`` (see ``redislab faults``) on ``target``: a node, a link
        (``NODE@a``, ``NODE-bus``), a partition (``'a,b|c,d'``), with ``primary`` standing for
        the current primary (on the Cluster: the owner of ``key``'s slot)."""
        fault = kinds.make(kind, targets.resolve(self.topology, target, key), **params)
        handle = ActiveFault(fault, self._heal_one)
        self._faults.append(handle)  # before injecting: a half-injected fault is healed at teardown
        try:
            self._injector.inject(fault)
        except BaseException:
            handle.healed = True  # the injector healed what it had done
            self._faults.remove(handle)
            raise
        return handle

    def kill_primary(self, key: str = targets.DEFAULT_KEY) -> ActiveFault:
        """SIGKILL (``docker kill``) the current primary; healing starts it again."""
        return self.fault("kill", targets.PRIMARY, key=key)

    def pause(self, target: str = targets.PRIMARY, key: str = targets.DEFAULT_KEY) -> ActiveFault:
        """SIGSTOP (``docker pause``) a node: hung, its connections open; healing resumes it."""
        return self.fault("pause", target, key=key)

    def partition(self, *members: str, key: str = targets.DEFAULT_KEY) -> ActiveFault:
        """Cut ``members`` (nodes, ``primary``, ``@a``/``@b``/``@clients``) off from everyone else,
        both ways (iptables, needs root). Default: the primary alone. A single argument with
        a ``|`` gives both sides."""
        target = targets.partition_target(self.topology, members or (targets.PRIMARY,), key)
        return self.fault("partition", target)

    def _heal_one(self, handle: ActiveFault) -> None:
        try:
            self._injector.heal(handle.fault)
        finally:
            handle.healed = True

    def heal(self) -> None:
        """Heal every fault this test injected and has not healed yet, newest first
        (the teardown calls it). Raises the first failure after trying all."""
        first: BaseException | None = None
        for handle in reversed(self._faults):
            try:
                handle.heal()
            except Exception as exc:  # noqa: BLE001 - heal the others, then report
                first = first or exc
        if first is not None:
            raise first

    @property
    def faults(self) -> list[ActiveFault]:
        """The faults this test injected, in order (healed ones included)."""
        return list(self._faults)

    @staticmethod
    def active_faults() -> list[dict[str, Any]]:
        """Every fault recorded as active in the lab home (by anyone): what ``redislab heal`` would undo."""
        return active_faults()

    # -- recording --------------------------------------------------------------------------------
    def recorder(self, path: Path | None = None) -> Recorder:
        """A recorder for this test's operations (see ``Recorder``); faults injected while it is
        open go into its history. Default file: ``history-N.jsonl`` in the test's tmp dir."""
        rec = Recorder(path or self._history_dir() / f"history-{next(self._names)}.jsonl")
        self._recorders.append(rec)
        self._events.add_sink(rec)
        return rec

    @property
    def recorders(self) -> list[Recorder]:
        """The recorders this test opened."""
        return list(self._recorders)

    # -- teardown ---------------------------------------------------------------------------------
    def close(self) -> None:
        """The test's teardown: heal its faults, close its recorders and sync clients."""
        try:
            self.heal()
        finally:
            for rec in self._recorders:
                rec.close()
            for c in self._clients:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - a client of a dead node may fail to close
                    pass
