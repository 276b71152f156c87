"""The faults: each one a class with its parameters (with units and bounds), inject and heal.

Adding a fault = one class here plus one line in ``FAULTS``. An unknown name is an
error listing the known ones. Every fault is undone by its ``heal``; ``heal_all``
in ``faults.injector`` undoes anything, even after the injecting process died.
"""
from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from typing import Any, ClassVar

from faults import netfilter, ownership
from faults.toxiproxy_api import ToxiproxyAPI, ToxiproxyGone
from topologies.api import Topology
from topologies.errors import LabError, UnknownNameError
from topologies.processes import OwnedProcess

DIRECTIONS = ("downstream", "upstream", "both")  # downstream: server -> client; upstream: client -> server


@dataclass(frozen=True)
class Param:
    name: str
    unit: str
    default: float | str | None
    low: float | None = None
    high: float | None = None
    help: str = ""
    choices: tuple[str, ...] = ()

    def coerce(self, fault: str, raw: Any) -> Any:
        if self.choices:
            if raw not in self.choices:
                raise LabError(f"{fault}: {self.name}={raw!r} is not accepted; accepted: {', '.join(self.choices)}")
            return raw
        if isinstance(self.default, str) or (self.default is None and self.low is None):
            return str(raw)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise LabError(f"{fault}: {self.name}={raw!r} is not a number ({self.unit})") from None
        if not math.isfinite(value):
            raise LabError(f"{fault}: {self.name}={raw!r} is not a finite number; accepted: "
                           f"{self.low:g}..{self.high:g} {self.unit}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise LabError(f"{fault}: {self.name}={raw} is out of range; accepted: {self.low:g}..{self.high:g} "
                           f"{self.unit}")
        return int(value) if value.is_integer() else value


class Fault:
    """Base: ``kind``, ``summary``, ``params``; subclasses implement inject and heal."""

    kind: ClassVar[str]
    summary: ClassVar[str]
    target_help: ClassVar[str] = "a node name (see `redislab status`)"
    params: ClassVar[tuple[Param, ...]] = ()
    # True when `redislab heal`'s sweep (Toxiproxy reset, the lab's iptables chain, resume/start
    # every node) undoes this fault; False when only its own heal can (client processes, memory).
    swept: ClassVar[bool] = True

    def __init__(self, target: str, /, **params: Any) -> None:
        if not target.isprintable():
            raise LabError(f"{self.kind}: target {target!r} contains control characters",
                           "see `redislab faults` for the accepted targets")
        known = {p.name: p for p in self.params}
        for name in params:
            if name not in known:
                raise UnknownNameError(f"parameter of {self.kind}", name, list(known) or ["(none)"])
        self.target = target
        self.values: dict[str, Any] = {}
        for p in self.params:
            raw = params.get(p.name, p.default)
            if raw is None:
                raise LabError(f"{self.kind}: parameter {p.name} ({p.unit}) is required")
            self.values[p.name] = p.coerce(self.kind, raw)
        self.saved: dict[str, Any] = {}  # what heal needs to restore

    def validate(self, topo: Topology) -> None:
        topo.spec.node(self.target)

    def inject(self, topo: Topology) -> None:
        raise NotImplementedError

    def heal(self, topo: Topology) -> None:
        raise NotImplementedError

    def record(self) -> dict[str, Any]:
        """JSON-able description (kept while active, so any process can heal it)."""
        return {"kind": self.kind, "target": self.target, "params": self.values, "saved": self.saved}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.values.items())
        return f"{self.kind}({self.target}{', ' + args if args else ''})"


# -- process faults ---------------------------------------------------------------------------
class Kill(Fault):
    kind = "kill"
    summary = "SIGKILL a node (docker kill); heal restarts it with its persistence as configured"

    def inject(self, topo: Topology) -> None:
        topo.kill(self.target)

    def heal(self, topo: Topology) -> None:
        if topo.backend.node_state(self.target) == "stopped":
            topo.start(self.target)


class Stop(Kill):
    kind = "stop"
    summary = "graceful stop (SIGTERM / docker stop); heal starts it again"

    def inject(self, topo: Topology) -> None:
        topo.stop(self.target)


class Pause(Fault):
    kind = "pause"
    summary = "SIGSTOP a node (docker pause): a hung server, connections stay open; heal resumes"

    def inject(self, topo: Topology) -> None:
        topo.pause(self.target)

    def heal(self, topo: Topology) -> None:
        if topo.backend.node_state(self.target) == "paused":
            topo.resume(self.target)


class ClientPause(Fault):
    swept = False
    kind = "client_pause"
    summary = "SIGSTOP one of the lab's own client processes (e.g. a lock holder); heal resumes it"
    target_help = (f"pid:N, a client process the lab started and registered (or any pid you own, with "
                   f"{ownership.VOUCH_FLAG}; never pid 1)")

    vouched: bool = False  # the user vouched for a pid the lab did not register (--i-own-this-pid)

    @property
    def pid(self) -> int:
        return ownership.parse_pid_target(self.kind, self.target)

    def validate(self, topo: Topology) -> None:
        proc = ownership.check_signallable(self.kind, self.pid, self.vouched)
        self.saved["start_ticks"] = proc.start_ticks  # heal signals only this very process

    def process(self) -> OwnedProcess | None:
        """The target as validated (same pid and start time), or None when it is gone."""
        ticks = self.saved.get("start_ticks")
        if ticks is None:
            return None
        proc = OwnedProcess(self.pid, int(ticks))
        return proc if proc.alive() else None

    def inject(self, topo: Topology) -> None:
        proc = self.process()
        if proc is None:
            raise LabError(f"{self.kind}: process {self.pid} is gone (or is no longer the one validated)")
        proc.signal(signal.SIGSTOP)

    def heal(self, topo: Topology | None) -> None:
        proc = self.process()
        if proc is not None:
            proc.signal(signal.SIGCONT)

    def record(self) -> dict[str, Any]:
        return {**super().record(), "vouched": self.vouched}


class ClientKill(ClientPause):
    kind = "client_kill"
    summary = ("SIGKILL one of the lab's own client processes (e.g. a consumer mid-batch); heal cannot "
               "resurrect it: the experiment's supervisor starts a replacement")

    def inject(self, topo: Topology) -> None:
        proc = self.process()
        if proc is None:
            raise LabError(f"{self.kind}: process {self.pid} is gone (or is no longer the one validated)")
        proc.signal(signal.SIGKILL)

    def heal(self, topo: Topology | None) -> None:
        """Nothing to undo: a killed process stays dead (restarting is the supervisor's job)."""


# -- Toxiproxy faults --------------------------------------------------------------------------
class ProxyFault(Fault):
    """A fault on one Toxiproxy proxy: a node's client port (NODE), its cluster bus (NODE-bus),
    or a client group's link to it (NODE@a, NODE@b)."""

    target_help = "NODE (all traffic into it), NODE-bus (cluster bus), NODE@a / NODE@b (a client group's link)"

    def validate(self, topo: Topology) -> None:
        proxies = topo.links()
        if self.target not in proxies:
            raise UnknownNameError("node or link", self.target, proxies)


class Toxic(ProxyFault):
    """A Toxiproxy toxic; ``direction`` picks the stream(s)."""

    toxic_type: ClassVar[str]

    def attributes(self) -> dict[str, int]:
        """Toxiproxy's attribute names: our parameter names without the unit suffix."""
        return {k.removesuffix("_ms"): int(v) for k, v in self.values.items() if k != "direction"}

    def _streams(self) -> list[str]:
        d = self.values["direction"]
        return ["downstream", "upstream"] if d == "both" else [d]

    def inject(self, topo: Topology) -> None:
        api = topo.toxiproxy()
        for stream in self._streams():
            api.add_toxic(topo.proxy_name(self.target), f"lab-{self.kind}-{stream}", self.toxic_type, stream,
                          self.attributes())

    def heal(self, topo: Topology) -> None:
        api = topo.toxiproxy()
        try:
            for stream in self._streams():
                api.remove_toxic(topo.proxy_name(self.target), f"lab-{self.kind}-{stream}")
        except ToxiproxyGone:
            pass  # Toxiproxy died, and the toxic with it: nothing left to undo


def _toxic(kind: str, toxic_type: str, summary: str, *params: Param, default_direction: str = "both") -> type[Toxic]:
    direction = Param("direction", "", default_direction, choices=DIRECTIONS,
                      help="downstream (server->client), upstream (client->server) or both")
    return type(kind.title().replace("_", ""), (Toxic,), {
        "kind": kind, "toxic_type": toxic_type, "summary": summary, "params": (*params, direction)})


Latency = _toxic("latency", "latency", "add latency (with jitter) to every packet on a link",
                 Param("latency_ms", "ms", None, 0, 60_000, "added delay"),
                 Param("jitter_ms", "ms", 0, 0, 60_000, "random +/- jitter"), default_direction="downstream")
Bandwidth = _toxic("bandwidth", "bandwidth", "limit a link's bandwidth",
                   Param("rate", "KB/s", None, 1, 10_000_000, "bandwidth"))
Timeout = _toxic("timeout", "timeout", "blackhole: data stalls, connections stay open (closed after timeout "
                 "ms if > 0)", Param("timeout", "ms", 0, 0, 3_600_000, "0 = stall until healed"))
ResetPeer = _toxic("reset_peer", "reset_peer", "reset connections (TCP RST) after timeout ms",
                   Param("timeout", "ms", 0, 0, 3_600_000, "delay before the reset"))
SlowClose = _toxic("slow_close", "slow_close", "delay the close of connections",
                   Param("delay", "ms", None, 0, 3_600_000, "delay before closing"))
LimitData = _toxic("limit_data", "limit_data", "close connections after N bytes",
                   Param("bytes", "bytes", None, 1, 1 << 40, "bytes allowed per connection"))


class Down(ProxyFault):
    kind = "down"
    summary = "disable a proxy: new connections refused, existing ones dropped"

    def inject(self, topo: Topology) -> None:
        topo.toxiproxy().set_enabled(topo.proxy_name(self.target), False)

    def heal(self, topo: Topology) -> None:
        try:
            topo.toxiproxy().set_enabled(topo.proxy_name(self.target), True)
        except ToxiproxyGone:
            pass  # Toxiproxy died; a restarted one starts with every proxy enabled


# -- partitions -------------------------------------------------------------------------------
class Partition(Fault):
    kind = "partition"
    summary = ("two-way network partition (iptables DROP on loopback): isolate one node, or split "
               "into two sides")
    target_help = ("NODE (isolated from everyone, clients included) or SIDE|SIDE with comma-separated "
                   "members: nodes, @a, @b (client groups), @clients (default clients), e.g. "
                   "'redis-1,@a|redis-2,redis-3,sentinel-1,sentinel-2,sentinel-3,@b'")

    def sides(self, topo: Topology) -> tuple[list[str], list[str]]:
        if "|" in self.target:
            left, right = self.target.split("|", 1)
            a = [m.strip() for m in left.split(",") if m.strip()]
            b = [m.strip() for m in right.split(",") if m.strip()]
            if not a or not b or set(a) & set(b):
                raise LabError(f"partition sides {self.target!r} are not two disjoint non-empty lists",
                               "e.g. 'redis-1,@a|redis-2,redis-3,@b'")
            return a, b
        topo.spec.node(self.target)
        members = topo.partition_members() if topo.is_target else netfilter.members(topo.spec)  # type: ignore[attr-defined]
        others = [n for n in members if n != self.target]
        return [self.target], others

    def validate(self, topo: Topology) -> None:
        a, b = self.sides(topo)
        if topo.is_target:  # a target cuts through its declared proxies, or refuses (see topologies.target)
            topo.partition_plan(a, b)  # type: ignore[attr-defined]
            return
        netfilter.resolve(topo.spec, a + b)

    def inject(self, topo: Topology) -> None:
        a, b = self.sides(topo)
        if topo.is_target:
            self.saved["disabled"] = topo.cut(a, b)  # type: ignore[attr-defined]
            return
        rules = netfilter.partition_rules(topo.spec, netfilter.resolve(topo.spec, a),
                                          netfilter.resolve(topo.spec, b))
        netns = topo.backend.netns_pid()
        if netns is not None:  # which namespace holds the rules: heal finds it even with no topology
            proc = OwnedProcess.of(netns)
            self.saved["netns"] = proc.to_json() if proc else None
        netfilter.Netfilter(netns).apply(rules)
        self.saved["rules"] = len(rules)

    def heal(self, topo: Topology) -> None:
        if topo.is_target:
            try:
                topo.uncut(self.saved.get("disabled", []))  # type: ignore[attr-defined]
            except ToxiproxyGone:
                pass  # a restarted Toxiproxy starts with every proxy enabled
            return
        if topo.backend.name == "docker" and topo.backend.node_state("toxiproxy") == "stopped":
            return  # the namespace, and its rules, died with the Toxiproxy container
        netfilter.Netfilter(topo.backend.netns_pid()).heal()


# -- memory pressure --------------------------------------------------------------------------
POLICIES = ("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu",
            "volatile-random", "volatile-ttl")


class Memory(Fault):
    swept = False
    kind = "memory"
    summary = "shrink maxmemory at run time (evict by policy, or refuse writes with noeviction); heal restores"
    params = (Param("maxmemory_mb", "MiB", None, 1, 1_048_576, "new maxmemory"),
              Param("policy", "", "allkeys-lru", choices=POLICIES, help="maxmemory-policy while squeezed"))

    def inject(self, topo: Topology) -> None:
        with topo.node_client(self.target, direct=True, decode_responses=True) as c:
            self.saved["maxmemory"] = c.config_get("maxmemory")["maxmemory"]
            self.saved["maxmemory-policy"] = c.config_get("maxmemory-policy")["maxmemory-policy"]
            c.config_set("maxmemory-policy", self.values["policy"])
            c.config_set("maxmemory", str(int(self.values["maxmemory_mb"] * 1024 * 1024)))

    def heal(self, topo: Topology) -> None:
        if not self.saved:
            return
        with topo.node_client(self.target, direct=True, decode_responses=True) as c:
            c.config_set("maxmemory", self.saved["maxmemory"])
            c.config_set("maxmemory-policy", self.saved["maxmemory-policy"])


FAULTS: dict[str, type[Fault]] = {f.kind: f for f in (
    Kill, Stop, Pause, Latency, Bandwidth, Timeout, ResetPeer, SlowClose, LimitData, Down, Partition,
    ClientPause, ClientKill, Memory)}


def make(kind: str, target: str, /, **params: Any) -> Fault:
    """A fault by name (LabError listing the known ones when unknown)."""
    if kind not in FAULTS:
        raise UnknownNameError("fault", kind, list(FAULTS), "see `redislab faults`")
    return FAULTS[kind](target, **params)


def from_record(record: dict[str, Any]) -> Fault:
    fault = make(record["kind"], record["target"], **record["params"])
    fault.saved = dict(record.get("saved", {}))
    if isinstance(fault, ClientPause):
        fault.vouched = bool(record.get("vouched", False))
    return fault
