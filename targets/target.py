"""Targets: an existing Redis deployment, described in a YAML file, driven through the same
``api.Topology`` the experiments use on the lab's own topologies.

    target = load("prod-like.yml")          # schema + consistency checks, one-line errors
    topo = TargetTopology(target)           # clients, roles, node control through the driver
    ok, why = experiments.target_fit.runnable(topo, experiment)

The file (schema: ``targets/target.schema.json``) names the kind, every node's announced
address (and optionally its direct address, its Toxiproxy proxy and client-group routes), the
Sentinels and master name, the password by environment-variable name, a driver for node faults
(``command`` templates, ``docker`` containers or ``kubernetes`` pods, see
``targets.target_kubernetes``) and limits (allowed faults, the key prefix, ``allow_destructive``).

What the lab promises on a target: it writes only keys under ``limits.key_prefix`` and deletes
them afterwards (SCAN + UNLINK, never FLUSHALL); it injects only allowed faults, and kill / stop /
pause only with ``allow_destructive: true``; a partition is made only when the declared proxies
cut both directions (see ``TargetTopology.partition_plan``), and it stalls traffic through them
(``TargetTopology.cut``) rather than refusing it.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from faults import records
from faults.toxiproxy_api import for_topology
from labcommon.errors import LabError, UnknownNameError
from labcommon.poll import wait_until
from topologies import api, topology_kinds
from topologies.clients import DEFAULT_POLICY
from topologies.sentinel_client import sentinel_class
from topologies.spec import NodeSpec, Options, TopologySpec

SCHEMA_PATH = Path(__file__).with_name("target.schema.json")
TARGET_ENV = "REDISLAB_TARGET"  # set by the runner so child processes (the observer) open the same target
DESTRUCTIVE = frozenset({"kill", "stop", "pause"})
PROXY_FAULTS = frozenset({"latency", "bandwidth", "timeout", "reset_peer", "slow_close", "limit_data", "down"})
LAB_TOXIC_PREFIX = "lab-"  # every toxic the lab adds is named lab-<fault>-<stream> (faults.kinds.Toxic)
PARTITION_TOXIC = f"{LAB_TOXIC_PREFIX}partition-"  # + stream: the toxics a partition adds (TargetTopology.cut)
STREAMS = ("upstream", "downstream")
COMMAND_TIMEOUT_S = 30.0  # default limit for one driver command
PROBE_TIMEOUT_S = 1.0
GROUPS = ("a", "b")
CLIENTS = "@clients"


# -- the file -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    host: str
    port: int
    proxy: str | None = None  # the Toxiproxy proxy serving this address


@dataclass(frozen=True)
class TargetNode:
    name: str
    kind: str  # redis | sentinel
    route: Route  # announced address (clients and peers)
    direct: tuple[str, int]  # the node itself (probes); = route's address when not declared
    groups: dict[str, Route] = field(default_factory=dict)
    container: str | None = None
    pod: str | None = None


@dataclass(frozen=True)
class Target:
    path: Path
    name: str
    kind: str
    nodes: tuple[TargetNode, ...]
    sentinels: tuple[TargetNode, ...]
    master_name: str | None
    password_env: str | None
    driver: dict[str, Any] | None
    toxiproxy_api: tuple[str, int] | None
    allowed_faults: frozenset[str]
    key_prefix: str
    allow_destructive: bool

    @property
    def all_nodes(self) -> tuple[TargetNode, ...]:
        return self.nodes + self.sentinels

    def node(self, name: str) -> TargetNode:
        for n in self.all_nodes:
            if n.name == name:
                return n
        raise UnknownNameError("node", name, [n.name for n in self.all_nodes])

    def password(self) -> str | None:
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise LabError(f"{self.path}: environment variable {self.password_env} (password_env) is not set",
                           f"export {self.password_env}=... before running")
        return value


def _fail(path: Path, where: str, what: str) -> LabError:
    return LabError(f"{path}: {where}: {what}", f"the format is {SCHEMA_PATH.name} (redislab target check FILE)")


def _where(parts: Any) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _address(raw: str) -> tuple[str, int]:
    host, port = raw.rsplit(":", 1)
    return host, int(port)


def load(path: str | Path) -> Target:
    """Read, validate against the schema, check consistency; a LabError names the first problem."""
    import jsonschema
    import yaml
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise LabError(f"target file {p}: cannot read it ({exc.strerror or exc})",
                       "give a readable YAML file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise _fail(p, where, f"not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    error = jsonschema.exceptions.best_match(validator.iter_errors(raw))
    if error is not None:
        raise _fail(p, _where(error.absolute_path), error.message)
    return _build(p, raw)


def _node(raw: dict[str, Any], kind: str) -> TargetNode:
    host, port = _address(raw["address"])
    groups = {g: Route(*_address(r["address"]), r.get("proxy")) for g, r in raw.get("groups", {}).items()}
    return TargetNode(raw["name"], kind, Route(host, port, raw.get("proxy")),
                      _address(raw.get("direct", raw["address"])), groups, raw.get("container"), raw.get("pod"))


def _build(p: Path, raw: dict[str, Any]) -> Target:
    limits = raw["limits"]
    api_url = raw.get("toxiproxy", {}).get("api")
    parsed = urlparse(api_url) if api_url else None
    t = Target(path=p, name=raw.get("name", p.stem), kind=raw["kind"],
               nodes=tuple(_node(n, "redis") for n in raw["nodes"]),
               sentinels=tuple(_node(n, "sentinel") for n in raw.get("sentinels", [])),
               master_name=raw.get("master_name"), password_env=raw.get("password_env"), driver=raw.get("driver"),
               toxiproxy_api=(parsed.hostname, parsed.port) if parsed else None,
               allowed_faults=frozenset(limits.get("allowed_faults", [])), key_prefix=limits["key_prefix"],
               allow_destructive=bool(limits.get("allow_destructive", False)))
    names = [n.name for n in t.all_nodes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _fail(p, "$.nodes", f"node names must be unique; repeated: {', '.join(dupes)}")
    ports = [n.route.port for n in t.all_nodes]
    if len(set(ports)) != len(ports):
        raise _fail(p, "$.nodes", "announced ports must be distinct (the lab maps Sentinel's and the Cluster's "
                                  "answers to nodes by port)")
    kind = topology_kinds.get(t.kind)  # the schema admits known kinds only
    if kind.has_sentinels and not (t.sentinels and t.master_name):
        raise _fail(p, "$", f"kind {t.kind} needs `sentinels` (at least one) and `master_name`")
    if not kind.has_sentinels and t.sentinels:
        raise _fail(p, "$.sentinels", f"only kind sentinel has Sentinels (kind is {t.kind})")
    if t.kind == "single" and len(t.nodes) != 1:
        raise _fail(p, "$.nodes", f"kind single has exactly one node ({len(t.nodes)} given)")
    destructive = sorted(t.allowed_faults & DESTRUCTIVE)
    if destructive and not t.allow_destructive:
        raise _fail(p, "$.limits", f"{', '.join(destructive)} allowed but allow_destructive is not true "
                                   "(required before anything is killed, stopped or paused)")
    if destructive and t.driver is None:
        raise _fail(p, "$.driver", f"{', '.join(destructive)} allowed but no driver says how")
    if t.driver and t.driver["type"] == "command":
        missing = [a for f in destructive for a in _ACTIONS[f] if a not in t.driver]
        if missing:
            raise _fail(p, "$.driver", f"command driver lacks templates for: {', '.join(sorted(set(missing)))}")
    if t.driver and t.driver["type"] == "docker":
        bare = [n.name for n in t.all_nodes if not n.container]
        if destructive and bare:
            raise _fail(p, "$.nodes", f"docker driver: nodes without `container`: {', '.join(bare)}")
    if t.driver and t.driver["type"] == "kubernetes":
        bare = [n.name for n in t.all_nodes if not n.pod]
        if destructive and bare:
            raise _fail(p, "$.nodes", f"kubernetes driver: nodes without `pod`: {', '.join(bare)}")
    network = sorted(t.allowed_faults & (PROXY_FAULTS | {"partition"}))
    if network and t.toxiproxy_api is None:
        raise _fail(p, "$.toxiproxy", f"{', '.join(network)} allowed but no Toxiproxy API is given")
    return t


_ACTIONS = {"kill": ("kill", "start"), "stop": ("stop", "start"), "pause": ("pause", "resume")}


# -- drivers ------------------------------------------------------------------------------------
class CommandDriver:
    """Node control by shell command templates from the target file ({node} {host} {port} {direct_host}
    {direct_port}, shell-quoted). ``state`` must print running, paused or stopped."""

    def __init__(self, cfg: dict[str, Any], target: Target) -> None:
        self.cfg = cfg
        self.target = target
        self.timeout_s = float(cfg.get("timeout_s", COMMAND_TIMEOUT_S))

    def run(self, action: str, name: str) -> str:
        template = self.cfg.get(action)
        if template is None:
            raise LabError(f"target {self.target.name}: the command driver has no `{action}` template",
                           f"add driver.{action} to {self.target.path}")
        n = self.target.node(name)
        cmd = template.format(node=shlex.quote(n.name), host=shlex.quote(n.route.host), port=n.route.port,
                              direct_host=shlex.quote(n.direct[0]), direct_port=n.direct[1])
        try:
            res = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise LabError(f"driver {action} {name}: no answer within {self.timeout_s:g} s: {cmd}") from None
        if res.returncode != 0:
            raise LabError(f"driver {action} {name} failed (exit {res.returncode}): {res.stderr.strip()[-200:]}",
                           f"the command was: {cmd}")
        return res.stdout.strip()

    def state(self, name: str) -> str:
        out = self.run("state", name)
        if out not in ("running", "paused", "stopped"):
            raise LabError(f"driver state {name} printed {out[:60]!r}; accepted: running, paused, stopped")
        return out


class DockerDriver:
    """Node control through the docker CLI, by the container names in the target file."""

    VERBS: ClassVar[dict[str, str]] = {"kill": "kill", "stop": "stop", "start": "start", "pause": "pause",
                                       "resume": "unpause"}

    def __init__(self, cfg: dict[str, Any], target: Target) -> None:
        self.env = {**os.environ, **({"DOCKER_HOST": cfg["docker_host"]} if cfg.get("docker_host") else {})}
        self.target = target

    def _container(self, name: str) -> str:
        c = self.target.node(name).container
        if not c:
            raise LabError(f"docker driver: node {name} has no `container` in {self.target.path}")
        return c

    def _docker(self, *args: str) -> str:
        res = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                             env=self.env)
        if res.returncode != 0:
            raise LabError(f"docker {' '.join(args)} failed: {res.stderr.strip()[-200:]}")
        return res.stdout.strip()

    def run(self, action: str, name: str) -> str:
        return self._docker(self.VERBS[action], self._container(name))

    def state(self, name: str) -> str:
        status = self._docker("inspect", "-f", "{{.State.Status}}", self._container(name))
        return {"running": "running", "paused": "paused"}.get(status, "stopped")


def _driver(target: Target) -> Any:
    cfg = target.driver
    if cfg is None:
        return None
    if cfg["type"] == "command":
        return CommandDriver(cfg, target)
    if cfg["type"] == "docker":
        return DockerDriver(cfg, target)
    from targets.target_kubernetes import KubernetesTargetDriver  # imports `kubernetes` only when used
    return KubernetesTargetDriver(cfg, target)  # LabError with the reason: no package, no kubeconfig


class TargetBackend:
    """``api.Backend`` for a deployment the lab did not start: node control through the driver, within
    the target's limits; nothing to start or stop as a whole."""

    name = "target"

    def __init__(self, spec: TopologySpec, target: Target) -> None:
        self.spec = spec
        self.target = target
        self.driver = _driver(target)

    def state(self) -> dict[str, Any]:
        return {"target": str(self.target.path)}

    def owns_anything(self) -> bool:
        return True

    def start_all(self) -> None:
        raise LabError("a target is not started by the lab")

    def stop_all(self) -> None:
        """Nothing: the lab never tears down a deployment it did not start."""

    def node_state(self, name: str) -> str:
        if name == "toxiproxy" or self.driver is None:
            return "running"  # without a driver the lab cannot stop anything, so nothing it stopped
        return self.driver.state(name)

    def netns_pid(self) -> int | None:
        return None

    def available(self) -> bool:
        return True

    def start_proxy(self) -> str:
        return ""

    def kill_proxy(self) -> None:
        raise LabError(f"target {self.target.name}: its Toxiproxy API does not answer, and the lab never "
                       "restarts a Toxiproxy it did not start", "restart it yourself, then `redislab heal --target`")

    def _act(self, fault: str, action: str, name: str) -> None:
        t = self.target
        if fault not in t.allowed_faults:
            raise LabError(f"target {t.name}: {fault} is not among limits.allowed_faults "
                           f"({', '.join(sorted(t.allowed_faults)) or 'none'})")
        if not t.allow_destructive:
            raise LabError(f"target {t.name}: {fault} needs limits.allow_destructive: true")
        if self.driver is None:
            raise LabError(f"target {t.name}: no driver to {action} {name}")
        self.driver.run(action, name)

    def kill(self, name: str) -> None:
        self._act("kill", "kill", name)

    def stop(self, name: str) -> None:
        self._act("stop", "stop", name)

    def pause(self, name: str) -> None:
        self._act("pause", "pause", name)

    def start(self, name: str) -> None:  # heal: always allowed (it restores)
        if self.driver is None:
            raise LabError(f"target {self.target.name}: no driver to start {name}")
        self.driver.run("start", name)

    def resume(self, name: str) -> None:
        if self.driver is None:
            raise LabError(f"target {self.target.name}: no driver to resume {name}")
        self.driver.run("resume", name)

    def logs(self, name: str, lines: int = 20) -> str:
        return ""

    def all_logs(self, lines: int = 8) -> str:
        return ""


# -- the topology -------------------------------------------------------------------------------
def _spec(t: Target) -> TopologySpec:
    nodes = [NodeSpec(n.name, "redis", n.route.port, n.direct[1], "primary") for n in t.nodes]
    nodes += [NodeSpec(n.name, "sentinel", n.route.port, n.direct[1], "sentinel") for n in t.sentinels]
    return TopologySpec(name=t.kind, nodes=tuple(nodes), options=Options())


class TargetTopology(api.Topology):
    """An existing deployment as an ``api.Topology``: same clients, roles and node control."""

    is_target = True

    def __init__(self, target: Target) -> None:
        self.target = target
        super().__init__(_spec(target), TargetBackend(_spec(target), target), target.password() or "")
        self.key_prefix = target.key_prefix
        self.master_name = target.master_name or ""

    # -- clients ------------------------------------------------------------------------------
    def _addr(self, node: TargetNode, group: str | None, direct: bool = False) -> tuple[str, int]:
        if direct:
            return node.direct
        if group is not None:
            if group not in node.groups:
                raise LabError(f"target {self.target.name}: node {node.name} has no route for client group {group}",
                               f"add nodes[].groups.{group} to {self.target.path}")
            r = node.groups[group]
            return r.host, r.port
        return node.route.host, node.route.port

    def address_remap(self, group: str | None) -> Any:
        by_port = {n.route.port: n for n in self.target.all_nodes}

        def remap(addr: tuple[str, int]) -> tuple[str, int]:
            node = by_port.get(int(addr[1]))
            return self._addr(node, group) if node is not None and group is not None else (addr[0], int(addr[1]))
        return remap

    def client_kwargs(self, asyncio: bool, policy: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Client settings as on the lab's topologies (``clients.ClientPolicy``), plus the password."""
        base = {"password": self.password} if self.password else {}
        return (policy or DEFAULT_POLICY).client_kwargs(asyncio, **{**base, **kwargs})

    def data_addresses(self, group: str | None) -> list[tuple[str, int]]:
        return [self._addr(n, group) for n in self.target.nodes]

    def sentinel(self, asyncio: bool = False, group: str | None = None, policy: Any = None, **kwargs: Any) -> Any:
        t = self.target
        if not t.sentinels:
            raise LabError(f"target {t.name} has no Sentinels")
        base = redis.asyncio.sentinel.Sentinel if asyncio else redis.sentinel.Sentinel
        cls = sentinel_class(base, self.address_remap(group))
        sentinel_kwargs = {**({"password": self.password} if self.password else {}),
                           **(policy or DEFAULT_POLICY).sentinel_kwargs(asyncio)}
        addrs = [self._addr(s, group if group in s.groups else None) for s in t.sentinels]
        return cls(addrs, sentinel_kwargs=sentinel_kwargs, **self.client_kwargs(asyncio, policy, kwargs))

    def node_client(self, name: str, asyncio: bool = False, direct: bool = False, group: str | None = None,
                    policy: Any = None, **kwargs: Any) -> Any:
        host, port = self._addr(self.target.node(name), group, direct)
        cls = redis.asyncio.Redis if asyncio else redis.Redis
        return cls(host=host, port=port, **self.client_kwargs(asyncio, policy, kwargs))

    def _probe(self, name: str) -> redis.Redis:
        return self.node_client(name, direct=True, socket_timeout=PROBE_TIMEOUT_S,
                                socket_connect_timeout=PROBE_TIMEOUT_S, decode_responses=True,
                                retry=Retry(NoBackoff(), 0))

    # -- roles and status ---------------------------------------------------------------------
    def role(self, name: str) -> str:
        if self.target.node(name).kind == "sentinel":
            return "sentinel"
        try:
            with self._probe(name) as c:
                role = c.info("replication")["role"]
        except redis.RedisError:
            return "unknown"
        return "primary" if role == "master" else "replica"

    def nodes(self) -> list[api.NodeStatus]:
        out = []
        for n in self.target.all_nodes:
            try:
                state = self.backend.node_state(n.name)
            except LabError:
                state = "unknown"
            role = self.role(n.name) if state == "running" else "unknown"
            out.append(api.NodeStatus(n.name, role, n.route.host, n.route.port, n.direct[1], state))
        return out

    def status(self) -> dict[str, Any]:
        t = self.target
        api_addr = f"http://{t.toxiproxy_api[0]}:{t.toxiproxy_api[1]}" if t.toxiproxy_api else "(none)"
        return {"topology": f"{t.name} ({t.kind})", "backend": "target", "toxiproxy_api": api_addr,
                "password_env": t.password_env, "key_prefix": t.key_prefix,
                "nodes": [{"name": s.name, "role": s.role, "host": s.host, "port": s.port,
                           "direct": "{}:{}".format(*t.node(s.name).direct), "state": s.state} for s in self.nodes()]}

    def start(self, name: str) -> None:
        self._node(name)
        self.backend.start(name)  # no lab state record: the lab does not own a target

    def start_proxy(self) -> str:
        return ""

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Every node and Sentinel answers PING on its direct address (the lab starts nothing)."""
        def all_answer() -> bool:
            for n in self.target.all_nodes:
                with self._probe(n.name) as c:
                    c.ping()
            return True
        wait_until(all_answer, timeout_s, f"target {self.target.name}: every node answering PING")

    # -- network ------------------------------------------------------------------------------
    def toxiproxy_address(self) -> tuple[str, int]:
        if self.target.toxiproxy_api is None:
            raise LabError(f"target {self.target.name} has no Toxiproxy API",
                           f"add toxiproxy.api to {self.target.path}")
        return self.target.toxiproxy_api

    def toxiproxy_ready(self) -> bool:
        if self.target.toxiproxy_api is None:
            return True  # nothing of the lab's machinery on the path
        import requests
        host, port = self.target.toxiproxy_api
        return requests.get(f"http://{host}:{port}/version", timeout=PROBE_TIMEOUT_S).status_code == 200

    def link_proxies(self) -> dict[str, str]:
        """Lab link name (NODE, NODE@a, NODE@b) -> the Toxiproxy proxy declared for it."""
        out = {}
        for n in self.target.all_nodes:
            if n.route.proxy:
                out[n.name] = n.route.proxy
            for g, r in n.groups.items():
                if r.proxy:
                    out[f"{n.name}@{g}"] = r.proxy
        return out

    def links(self) -> list[str]:
        return list(self.link_proxies())

    def proxy_name(self, link: str) -> str:
        proxies = self.link_proxies()
        if link not in proxies:
            raise UnknownNameError("link with a declared proxy", link, list(proxies) or ["(none)"])
        return proxies[link]

    def partition_members(self) -> list[str]:
        groups = sorted({f"@{g}" for n in self.target.all_nodes for g in n.groups})
        return [n.name for n in self.target.all_nodes] + groups + [CLIENTS]

    def _connects(self, x: str, y: TargetNode, roles: dict[str, str]) -> bool:
        """May party ``x`` open connections to node ``y``? Clients: to anything. Sentinels: to every node.
        Redis nodes never connect to Sentinels; on single/sentinel a primary connects to nobody (replicas
        and Sentinels connect to it); replicas and Cluster nodes may connect to any Redis node."""
        if x.startswith("@"):
            return True
        src = self.target.node(x)
        if src.kind == "sentinel":
            return True
        if y.kind == "sentinel":
            return False
        return topology_kinds.get(self.target.kind).redis_cluster or roles.get(x) != "primary"

    def _route_proxy(self, x: str, y: TargetNode) -> str | None:
        if x in ("@a", "@b"):
            r = y.groups.get(x[1:])
            return r.proxy if r else None
        return y.route.proxy

    def partition_plan(self, a: list[str], b: list[str]) -> list[str]:
        """The proxies to cut so that nothing passes between sides ``a`` and ``b`` in either
        direction, or a LabError naming the connection that no declared proxy can cut alone."""
        known = self.partition_members()
        for m in a + b:
            if m not in known:
                raise UnknownNameError("partition member", m, known)
        if self.target.toxiproxy_api is None:
            raise LabError(f"target {self.target.name}: a partition needs Toxiproxy in front of the nodes",
                           "declare toxiproxy.api and each node's proxy")
        roles = {n.name: self.role(n.name) for n in self.target.nodes}
        side = dict.fromkeys(a, 0) | dict.fromkeys(b, 1)
        cut: set[str] = set()
        for x in side:
            for y in self.target.all_nodes:
                if y.name not in side or side[y.name] == side[x] or not self._connects(x, y, roles):
                    continue
                proxy = self._route_proxy(x, y)
                if proxy is None:
                    raise LabError(f"partition refused: traffic {x} -> {y.name} passes no declared proxy, so it "
                                   "cannot be cut (an inbound-only cut is not a partition)",
                                   f"declare the proxy (and client-group routes) for {y.name}")
                for z in side:  # someone on y's own side using the same proxy would be cut too
                    if side[z] == side[y.name] and z != y.name and self._connects(z, y, roles) \
                            and self._route_proxy(z, y) == proxy:
                        raise LabError(f"partition refused: cutting {x} -> {y.name} (proxy {proxy}) would also cut "
                                       f"{z} -> {y.name} on the same side; the declared proxies cannot cut both "
                                       "directions (an inbound-only cut is not a partition)",
                                       "isolate a primary, or give each party its own route")
                cut.add(proxy)
        return sorted(cut)

    def cut(self, a: list[str], b: list[str]) -> list[str]:
        """Partition ``a`` from ``b``: a ``timeout`` toxic (0: hold the data until it is removed) on both
        streams of every proxy of ``partition_plan``, so traffic between the sides stalls, established
        connections included, as a network partition (and the lab's own, iptables DROP) makes it; a
        disabled proxy would refuse connections at once, which clients and Sentinel see as a kill.
        Returns the proxies cut."""
        tp = for_topology(self)
        done: list[str] = []
        for proxy in self.partition_plan(a, b):
            for stream in STREAMS:
                tp.add_toxic(proxy, PARTITION_TOXIC + stream, "timeout", stream, {"timeout": 0})
            done.append(proxy)
        return done

    def uncut(self, proxies: list[str]) -> None:
        tp = for_topology(self)
        for proxy in proxies:
            for stream in STREAMS:
                tp.remove_toxic(proxy, PARTITION_TOXIC + stream)

    # -- limits and experiments ---------------------------------------------------------------
    def check_fault(self, kind: str) -> None:
        t = self.target
        if kind not in t.allowed_faults:
            raise LabError(f"target {t.name}: fault {kind} is not allowed (limits.allowed_faults: "
                           f"{', '.join(sorted(t.allowed_faults)) or 'none'})", f"edit {t.path} to allow it")
        if kind in DESTRUCTIVE and not t.allow_destructive:
            raise LabError(f"target {t.name}: {kind} needs limits.allow_destructive: true")

    # -- clean-up -----------------------------------------------------------------------------
    def _primaries(self) -> list[str]:
        return [n.name for n in self.target.nodes if self.role(n.name) == "primary"]

    def delete_lab_keys(self) -> int:
        """Delete every key under the key prefix (SCAN MATCH + UNLINK on each primary; never FLUSHALL).
        Returns how many were deleted."""
        pattern = _glob_escape(self.key_prefix) + "*"
        deleted = 0
        for name in self._primaries():
            with self.node_client(name, direct=True, socket_timeout=5, retry=Retry(NoBackoff(), 0)) as c:
                batch: list[Any] = []
                for key in c.scan_iter(match=pattern, count=1000):
                    batch.append(key)
                    if len(batch) >= 500:
                        deleted += c.unlink(*batch)
                        batch = []
                if batch:
                    deleted += c.unlink(*batch)
        return deleted

    def heal_all(self) -> list[str]:
        """Back to the state the lab found: the lab's toxics removed and declared proxies enabled, stopped
        or paused nodes started or resumed (through the driver), fault records cleared."""
        done: list[str] = []
        if self.target.toxiproxy_api is not None:
            tp = for_topology(self)
            declared = set(self.link_proxies().values())
            toxics = tp.toxics()
            disabled = set(tp.disabled())
            for proxy in sorted(declared):
                for toxic in toxics.get(proxy, []):
                    if toxic.startswith(LAB_TOXIC_PREFIX):
                        tp.remove_toxic(proxy, toxic)
                        done.append(f"removed toxic {toxic} from {proxy}")
                if proxy in disabled:
                    tp.set_enabled(proxy, True)
                    done.append(f"enabled proxy {proxy}")
        driver = self.backend.driver  # type: ignore[attr-defined]  # a target's backend (TargetBackend) has .driver
        if driver is not None and hasattr(driver, "sweep"):  # kubernetes: the lab's objects, found by label
            done += driver.sweep()
        if driver is not None:
            for n in self.target.all_nodes:
                state = self.backend.node_state(n.name)
                if state == "paused":
                    self.backend.resume(n.name)
                    done.append(f"resumed {n.name}")
                elif state == "stopped":
                    self.backend.start(n.name)
                    done.append(f"started {n.name}")
        records.clear()
        return done


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def open_target(path: str | Path) -> TargetTopology:
    return TargetTopology(load(path))


def current_from_env() -> TargetTopology | None:
    """The target the runner named for this process tree (REDISLAB_TARGET), if any."""
    path = os.environ.get(TARGET_ENV)
    return open_target(path) if path else None


def current() -> api.Topology | None:
    """The topology this process acts on: the target the runner named (REDISLAB_TARGET), else the one
    the lab recorded as up (``api.current()``). Child processes of a run (observer, generators) ask this."""
    target = current_from_env()
    return target if target is not None else api.current()
