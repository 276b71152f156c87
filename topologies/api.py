"""One Python API over both backends: bring up, tear down, status, clients, node control.

    from topologies import api
    topo = api.up("sentinel", backend="auto")   # returns when healthy
    r = topo.client()                           # Sentinel(...).master_for("lab"), clients.DEFAULT_POLICY
    topo.kill("redis-1")
    api.down()
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

from labcommon.errors import LabError, UnknownNameError
from topologies import health, topology_kinds
from topologies.clients import DEFAULT_POLICY, ClientPolicy
from topologies.home import StateFile
from topologies.home import password as lab_password
from topologies.sentinel_client import sentinel_class
from topologies.spec import (
    HOST,
    MASTER_NAME,
    PASSWORD_ENV,
    TOXIPROXY_API_PORT,
    NodeSpec,
    Options,
    TopologySpec,
    build_spec,
)
from topologies.topology_kinds.base import TopologyKind

BACKENDS: tuple[str, ...] = ("auto", "docker", "local")
UP_TIMEOUT_S = 90.0  # deadline for a topology to become healthy
MAX_UP_TIMEOUT_S = 3600.0  # the longest --timeout accepted, seconds
_STATE = "topology.json"


class Backend(Protocol):
    """What a backend provides (see topologies.local.LocalBackend and topologies.docker.DockerBackend)."""

    name: str
    spec: TopologySpec

    def state(self) -> dict[str, Any]: ...
    def owns_anything(self) -> bool: ...
    def start_all(self) -> None: ...
    def stop_all(self) -> None: ...
    def node_state(self, name: str) -> str: ...
    def netns_pid(self) -> int | None: ...
    def available(self) -> bool: ...
    def start_proxy(self) -> str: ...
    def kill_proxy(self) -> None: ...
    def kill(self, name: str) -> None: ...
    def stop(self, name: str) -> None: ...
    def start(self, name: str) -> None: ...
    def pause(self, name: str) -> None: ...
    def resume(self, name: str) -> None: ...
    def logs(self, name: str, lines: int = 20) -> str: ...
    def all_logs(self, lines: int = 8) -> str: ...


class StartingBackend(Backend, Protocol):
    """A backend that starts topologies itself (local, docker; a target's backend does not)."""

    password: str

    def form_cluster(self) -> None:
        """Form the cluster once its nodes answer (``TopologyKind.formed``), unless the backend's
        own deployment does it."""
        ...


def _make_backend(kind: str, spec: TopologySpec, pw: str, state: dict[str, Any] | None = None
                  ) -> StartingBackend:
    if kind == "local":
        from topologies.local import LocalBackend
        return LocalBackend(spec, pw, state)
    if kind == "docker":
        from topologies.docker import DockerBackend
        return DockerBackend(spec, pw, state)
    raise UnknownNameError("backend", kind, BACKENDS)


def resolve_backend(kind: str) -> str:
    """'auto' means docker when a daemon answers, else local."""
    if kind not in BACKENDS:
        raise UnknownNameError("backend", kind, BACKENDS, "try: --backend local")
    if kind != "auto":
        return kind
    from topologies import dockerd
    return "docker" if dockerd.daemon_answers() else "local"


@dataclass(frozen=True)
class NodeStatus:
    name: str
    role: str  # primary | replica | sentinel | proxy | unknown
    host: str
    port: int  # the address a client on this machine uses (through Toxiproxy)
    direct_port: int  # the node's own port, bypassing Toxiproxy
    state: str  # running | paused | stopped
    bus_port: int | None = None


class Topology:
    """A running topology: its spec, the backend that runs it, clients and node control."""

    is_target = False  # an existing deployment (targets.target), not one the lab started
    master_name = MASTER_NAME  # what the Sentinels monitor the primary under
    key_prefix = ""  # every key an experiment writes starts with this (targets confine the lab to one)

    def __init__(self, spec: TopologySpec, backend: Backend, password: str) -> None:
        self.spec = spec
        self.backend = backend
        self.password = password

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> TopologyKind:
        """What this topology's kind does differently (clients, readiness, primary)."""
        return topology_kinds.get(self.spec.name)

    # -- clients ------------------------------------------------------------------
    def client(self, asyncio: bool = False, group: str | None = None, policy: ClientPolicy | None = None,
               **kwargs: Any) -> Any:
        """The client an application would use: ``Redis`` (single), ``Sentinel.master_for``
        (sentinel), ``RedisCluster`` (cluster), and for redlock a ``list`` of ``Redis``, one
        per independent node in node order (what ``patterns.redlock.Redlock`` takes).

        Timeouts, redis-py's retry and the pool size come from ``policy`` (default
        ``clients.DEFAULT_POLICY``: 0.25 s timeouts, one attempt per call); ``kwargs`` go
        to the client and override it (``decode_responses``, ``socket_timeout`` ...).
        ``group`` ("a" or "b") routes every connection through that client group's own
        proxies, so a partition can put the group on one side.
        """
        return self.kind.client(self, asyncio, group, policy, **kwargs)

    def client_kwargs(self, asyncio: bool, policy: ClientPolicy | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``policy``'s (default ``clients.DEFAULT_POLICY``) client settings and the password,
        overridden by ``kwargs``."""
        return (policy or DEFAULT_POLICY).client_kwargs(asyncio, **{"password": self.password, **kwargs})

    def data_addresses(self, group: str | None) -> list[tuple[str, int]]:
        """Every data node's address in node order (client ``group``'s proxy when given)."""
        remap = self.address_remap(group)
        return [remap((HOST, n.port)) for n in self.spec.redis_nodes]

    def address_remap(self, group: str | None) -> Callable[[tuple[str, int]], tuple[str, int]]:
        """Maps an announced (host, port) to the same node's port for client ``group``."""
        if group is None:
            return lambda addr: addr
        ports = {n.port: n.group_port(group) for n in self.spec.nodes}
        return lambda addr: (addr[0], ports.get(int(addr[1]), int(addr[1])))

    def sentinel(self, asyncio: bool = False, group: str | None = None, policy: ClientPolicy | None = None,
                 **kwargs: Any) -> Any:
        """A ``Sentinel`` over the three Sentinels' proxied addresses (sentinel topology).

        Discovery asks the Sentinels in turn, each once with ``policy.sentinel_timeout_s``;
        ``master_for``/``slave_for`` clients get ``policy`` (default ``clients.DEFAULT_POLICY``),
        overridden by ``kwargs``.
        """
        if not self.spec.sentinels:
            raise LabError(f"topology {self.name} has no Sentinels", "bring up: redislab up sentinel")
        policy = policy or DEFAULT_POLICY
        remap = self.address_remap(group)
        cls = sentinel_class(redis.asyncio.sentinel.Sentinel if asyncio else redis.sentinel.Sentinel, remap)
        kwargs = policy.client_kwargs(asyncio, **{"password": self.password, **kwargs})
        return cls([remap((HOST, s.port)) for s in self.spec.sentinels],
                   sentinel_kwargs={"password": self.password, **policy.sentinel_kwargs(asyncio)}, **kwargs)

    def node_client(self, name: str, asyncio: bool = False, direct: bool = False, group: str | None = None,
                    policy: ClientPolicy | None = None, **kwargs: Any) -> Any:
        """A plain client to one node: through its proxy (or client ``group``'s proxy) unless
        ``direct``; settings from ``policy`` (default ``clients.DEFAULT_POLICY``), overridden by ``kwargs``."""
        node = self.spec.node(name)
        kwargs = (policy or DEFAULT_POLICY).client_kwargs(asyncio, **{"password": self.password, **kwargs})
        cls = redis.asyncio.Redis if asyncio else redis.Redis
        port = node.direct_port if direct else (node.group_port(group) if group else node.port)
        return cls(host=HOST, port=port, **kwargs)

    def node_clients(self, asyncio: bool = False, direct: bool = False, group: str | None = None,
                     **kwargs: Any) -> list[Any]:
        """One plain client per Redis node, in node order (see ``node_client``)."""
        return [self.node_client(n.name, asyncio=asyncio, direct=direct, group=group, **kwargs)
                for n in self.spec.redis_nodes]

    # -- roles and status ---------------------------------------------------------
    def role(self, name: str) -> str:
        node = self.spec.node(name)
        if node.kind == "sentinel":
            return "sentinel"
        try:
            with health.node_client(node, self.password, direct=True) as c:
                role = c.info("replication")["role"]
        except redis.RedisError:
            return "unknown"
        return "primary" if role == "master" else "replica"

    def primary(self) -> str | None:
        """Name of the node that currently acts as primary (single/sentinel), per the nodes themselves."""
        primaries = [n.name for n in self.spec.redis_nodes if self.role(n.name) == "primary"]
        return primaries[0] if len(primaries) == 1 else None

    def nodes(self) -> list[NodeStatus]:
        out = [NodeStatus("toxiproxy", "proxy", HOST, TOXIPROXY_API_PORT, TOXIPROXY_API_PORT,
                          self.backend.node_state("toxiproxy"))]
        for n in self.spec.nodes:
            state = self.backend.node_state(n.name)
            role = self.role(n.name) if state == "running" else "unknown"
            out.append(NodeStatus(n.name, role, HOST, n.port, n.direct_port, state, n.bus_port))
        return out

    def status(self) -> dict[str, Any]:
        return {
            "topology": self.name,
            "backend": self.backend.name,
            "toxiproxy_api": f"http://{HOST}:{TOXIPROXY_API_PORT}",
            "password_env": PASSWORD_ENV,
            "options": dataclasses.asdict(self.spec.options),
            "nodes": [
                {"name": s.name, "role": s.role, "host": s.host, "port": s.port,
                 "direct": f"{HOST}:{s.direct_port}", "state": s.state,
                 **({"bus_port": s.bus_port} if s.bus_port else {})}
                for s in self.nodes()
            ],
        }

    # -- node control -------------------------------------------------------------
    def kill(self, name: str) -> None:
        """SIGKILL / ``docker kill``: the node dies without shutdown."""
        self._node(name)
        self.backend.kill(name)

    def stop(self, name: str) -> None:
        self._node(name)
        self.backend.stop(name)

    def start(self, name: str) -> None:
        self._node(name)
        self.backend.start(name)
        _record(self.spec, self.backend)  # the new process must be owned by whoever runs `down`

    def pause(self, name: str) -> None:
        """SIGSTOP / ``docker pause``: a hung node that keeps its connections open."""
        self._node(name)
        self.backend.pause(name)

    def resume(self, name: str) -> None:
        self._node(name)
        self.backend.resume(name)

    def start_proxy(self) -> str:
        """Start Toxiproxy again if it died (see the backends); returns what was done ('' if nothing)."""
        done = self.backend.start_proxy()
        if done:
            _record(self.spec, self.backend)
        return done

    def restart_proxy(self) -> str:
        """Kill the lab's own Toxiproxy and start it again: the last resort when its API hangs.
        A toxic removal can wedge a proxy's toxic collection, after which every API call touching
        it times out (Shopify/toxiproxy issue 558, open). Every toxic goes with the process; on
        Docker the nodes sharing its network namespace restart too (see ``start_proxy``)."""
        self.backend.kill_proxy()
        return "killed the lab's Toxiproxy (its API hung), then " + self.start_proxy()

    # -- network hooks (overridden by targets.target.TargetTopology) ---------------------
    def toxiproxy_address(self) -> tuple[str, int]:
        """Host and port of the Toxiproxy API in front of this topology's nodes
        (the client is ``faults.toxiproxy_api.for_topology``)."""
        return HOST, TOXIPROXY_API_PORT

    def toxiproxy_ready(self) -> bool:
        return health.toxiproxy_ready()

    def links(self) -> list[str]:
        """Link names a proxy fault accepts (NODE, NODE@a, NODE@b, NODE-bus)."""
        return [p.name for p in self.spec.proxies()]

    def proxy_name(self, link: str) -> str:
        """The Toxiproxy proxy carrying ``link``."""
        return link

    def check_fault(self, kind: str) -> None:
        """Raise LabError when this topology's limits forbid fault ``kind`` (a lab topology allows all)."""

    def _node(self, name: str) -> NodeSpec:
        return self.spec.node(name)

    def wait_healthy(self, timeout_s: float = UP_TIMEOUT_S) -> None:
        health.wait_healthy(self.spec, self.password, timeout_s, self.backend.all_logs)


# -- lifecycle ----------------------------------------------------------------------
def current() -> Topology | None:
    """The topology the lab recorded as up (None if none, or if everything it owned is gone).
    A process that may be acting on a target file asks ``targets.target.current()`` instead."""
    record = StateFile(_STATE).read()
    if not record:
        return None
    try:
        spec = build_spec(record["topology"], Options(**record.get("options", {})))
        backend = _make_backend(record["backend"], spec, lab_password(), record.get("backend_state"))
    except (LabError, KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None  # a damaged record names nothing the lab can act on (`down --all` finds leftovers)
    return Topology(spec, backend, lab_password())


def up(name: str, backend: str = "auto", options: Options | None = None,
       timeout_s: float = UP_TIMEOUT_S) -> Topology:
    """Start topology ``name`` and return when it is healthy.

    Refuses when another topology is up. If it cannot become healthy before
    ``timeout_s`` seconds, everything it started is torn down and a LabError
    carrying the last log lines is raised.
    """
    if not (isinstance(timeout_s, (int, float)) and math.isfinite(timeout_s) and 0 < timeout_s <= MAX_UP_TIMEOUT_S):
        raise LabError(f"timeout {timeout_s!r} is out of range; accepted: 0 < S <= {MAX_UP_TIMEOUT_S:g} seconds")
    spec = build_spec(name, options or Options.from_env())
    kind = resolve_backend(backend)
    from topologies import runlock
    with runlock.hold(f"up {name} ({kind})"):
        return _up(spec, kind, timeout_s)


def _up(spec: TopologySpec, kind: str, timeout_s: float) -> Topology:
    name = spec.name
    existing = current()
    if existing is not None:
        if existing.backend.owns_anything():
            raise LabError(f"topology {existing.name} is already up ({existing.backend.name} backend)",
                           "run `redislab down` first")
        existing.backend.stop_all()  # stale record: clean what may remain
        StateFile(_STATE).clear()
    from topologies import ports
    ports.require_free(spec.ports(), f"topology {name}")
    pw = lab_password()
    be = _make_backend(kind, spec, pw)
    topo = Topology(spec, be, pw)
    try:
        _record(spec, be)
        be.start_all()
        _record(spec, be)
        _bring_to_health(be, timeout_s)
    except BaseException:
        be.stop_all()
        StateFile(_STATE).clear()
        raise
    return topo


def _record(spec: TopologySpec, be: Backend) -> None:
    """Persist what the backend owns, so any later process can control and tear it down."""
    StateFile(_STATE).write({"topology": spec.name, "backend": be.name,
                             "options": dataclasses.asdict(spec.options), "backend_state": be.state(),
                             "recorded_at": time.time()})


def _bring_to_health(be: StartingBackend, timeout_s: float) -> None:
    """Wait until the started topology is healthy, forming it first when its kind needs that."""
    health.wait_healthy(be.spec, be.password, timeout_s, be.all_logs, form=be.form_cluster)


def down(all_: bool = False) -> list[str]:
    """Tear down the recorded topology; with ``all_`` also any lab leftovers of every
    topology on both backends. Returns what was removed (for the CLI to print)."""
    removed: list[str] = []
    topo = current()
    if topo is not None:
        topo.backend.stop_all()
        removed.append(f"{topo.name} ({topo.backend.name})")
    StateFile(_STATE).clear()
    if all_:
        from topologies import docker, dockerd
        if dockerd.daemon_answers():
            removed += docker.remove_all_projects()
        from topologies.local import kill_strays, remove_run_dirs
        removed += kill_strays()
        removed += remove_run_dirs()
    return removed
