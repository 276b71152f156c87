"""The fault kinds: each one a class with its parameters (with units and bounds), inject and heal.

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
from faults.toxiproxy_api import ToxiproxyGone, ToxiproxyHung, for_topology
from labcommon.errors import LabError, UnknownNameError
from topologies.api import Topology
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

    def outcome(self) -> dict[str, Any]:
        """What the fault did, once healed (JSON-able, for the heal event): empty when the parameters
        say it all; the faults that act over time say what happened (steps, keys moved, who ended it,
        an error met half way)."""
        return {}

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
        api = for_topology(topo)
        for stream in self._streams():
            api.add_toxic(topo.proxy_name(self.target), f"lab-{self.kind}-{stream}", self.toxic_type, stream,
                          self.attributes())

    def heal(self, topo: Topology) -> None:
        api = for_topology(topo)
        try:
            for stream in self._streams():
                api.remove_toxic(topo.proxy_name(self.target), f"lab-{self.kind}-{stream}")
        except ToxiproxyGone:
            pass  # Toxiproxy died, and the toxic with it: nothing left to undo
        except ToxiproxyHung:
            # its API hangs (Shopify/toxiproxy issue 558: a removal can wedge the proxy): the toxic
            # cannot be removed, so the lab's own Toxiproxy is restarted, toxics and all; the
            # observer sees it go (a ``lab`` event) and the run's verdict becomes undecided
            topo.restart_proxy()


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
        for_topology(topo).set_enabled(topo.proxy_name(self.target), False)

    def heal(self, topo: Topology) -> None:
        try:
            for_topology(topo).set_enabled(topo.proxy_name(self.target), True)
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
        members = topo.partition_members() if topo.is_target else netfilter.members(topo.spec)  # type: ignore[attr-defined]  # topo.is_target: a TargetTopology
        others = [n for n in members if n != self.target]
        return [self.target], others

    def validate(self, topo: Topology) -> None:
        a, b = self.sides(topo)
        if topo.is_target:  # a target cuts through its declared proxies, or refuses (see targets.target)
            topo.partition_plan(a, b)  # type: ignore[attr-defined]  # topo.is_target: a TargetTopology
            return
        netfilter.resolve(topo.spec, a + b)

    def inject(self, topo: Topology) -> None:
        a, b = self.sides(topo)
        if topo.is_target:
            self.saved["cut"] = topo.cut(a, b)  # type: ignore[attr-defined]  # topo.is_target: a TargetTopology
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
                topo.uncut(self.saved.get("cut", []))  # type: ignore[attr-defined]  # topo.is_target: a TargetTopology
            except ToxiproxyGone:
                pass  # a restarted Toxiproxy starts without toxics
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


# -- planned maintenance ------------------------------------------------------------------------
FAILOVER_MODES = ("default", "force", "takeover")
JOIN_TIMEOUT_S = 120.0  # heal waits this long at most for a restart / migration / stall in progress


class Failover(Fault):
    kind = "failover"
    summary = ("manual failover of a primary: SENTINEL FAILOVER (Sentinel) or CLUSTER FAILOVER "
               "[FORCE|TAKEOVER] sent to one of its replicas (Cluster); nothing to undo: the promoted "
               "replica stays primary")
    target_help = "the current primary (Sentinel: the one the Sentinels name; Cluster: any primary)"
    params = (Param("mode", "", "default", choices=FAILOVER_MODES,
                    help="Cluster only: default (replica catches up, writes paused), force (no handshake "
                         "with the primary), takeover (no vote either)"),)

    def validate(self, topo: Topology) -> None:
        node = topo.spec.node(self.target)
        if not topo.kind.fails_over or node.kind != "redis":
            raise LabError(f"failover: target {self.target!r} is not a Sentinel or Cluster primary",
                           "bring up sentinel or cluster and target its primary")
        if topo.kind.has_sentinels and self.values["mode"] != "default":
            raise LabError(f"failover: mode={self.values['mode']} is a Cluster mode; accepted on Sentinel: default")

    def inject(self, topo: Topology) -> None:
        from faults import maintenance
        if topo.kind.has_sentinels:
            maintenance.sentinel_failover(topo, self.target)
        else:
            self.saved["replica"] = maintenance.cluster_failover(topo, self.target, self.values["mode"])

    def heal(self, topo: Topology) -> None:
        """Nothing to undo: a failover is a new normal (the old primary rejoins as a replica)."""


RESTART_HOWS = ("stop", "kill")
HOOKS = ("none", "failover")


class Restart(Fault):
    kind = "restart"
    summary = ("restart nodes: one, or rolling over several (replicas first, the primary last) with a pause "
               "between; graceful (SIGTERM / docker stop) or a crash a supervisor restarts (SIGKILL); "
               "optionally failing a primary over first, like a preStop hook; heal waits for the round to end "
               "and starts any node still down")
    target_help = "a data node, a comma-separated list of them, or 'all' (every data node: a rolling restart)"
    params = (Param("how", "", "stop", choices=RESTART_HOWS, help="stop: graceful (SIGTERM); kill: SIGKILL"),
              Param("down_ms", "ms", 0, 0, 600_000, "time each node stays down before it is started"),
              Param("pause_ms", "ms", 2000, 0, 600_000, "pause between two nodes of a rolling restart"),
              Param("hook", "", "none", choices=HOOKS,
                    help="failover: SENTINEL FAILOVER away from a primary before stopping it (a preStop hook)"))

    def nodes(self, topo: Topology) -> list[str]:
        names = [n.name for n in topo.spec.redis_nodes] if self.target == "all" else \
            [t.strip() for t in self.target.split(",") if t.strip()]
        for name in names:
            if topo.spec.node(name).kind != "redis":
                raise LabError(f"restart: {name} is not a data node", "restart redis-N nodes (or 'all')")
        if not names:
            raise LabError("restart: no node given", "e.g. --target redis-1 or --target all")
        return names

    def validate(self, topo: Topology) -> None:
        self.nodes(topo)

    def inject(self, topo: Topology) -> None:
        from faults import maintenance
        nodes = maintenance.restart_order(topo, self.nodes(topo))
        self.saved["order"] = nodes
        self._restarter = maintenance.Restarter(topo, nodes, self.values["how"], self.values["down_ms"] / 1000,
                                                self.values["pause_ms"] / 1000, self.values["hook"])
        self._restarter.start()

    def heal(self, topo: Topology) -> None:
        """Wait for the round to end (a rolling restart runs to completion), then start any node of it
        that is still down (``redislab heal`` from another process: the sweep starts them)."""
        restarter = getattr(self, "_restarter", None)
        if restarter is not None:
            restarter.join(JOIN_TIMEOUT_S)
            self.saved["steps"] = [what for _t, what in restarter.steps]
            if restarter.error is not None:  # e.g. no promotion within the deadline: a finding, kept
                self.saved["error"] = f"{type(restarter.error).__name__}: {restarter.error}"[:300]
        for name in self.nodes(topo):
            state = topo.backend.node_state(name)
            if state == "stopped":
                topo.start(name)
            elif state == "paused":
                topo.resume(name)

    def outcome(self) -> dict[str, Any]:
        """The order, each step done (a round cut short or failed half way shows here) and the error."""
        return {k: self.saved[k] for k in ("order", "steps", "error") if k in self.saved}


class SlowCommand(Fault):
    swept = False
    kind = "slow_command"
    summary = ("keep a node's single thread busy: a long Lua script (BUSY replies after busy_ms; heal "
               "sends SCRIPT KILL), DEBUG SLEEP (no reply at all; heal waits it out) or KEYS over a large "
               "keyspace in a loop (heal stops it and drops that keyspace)")
    params = (Param("how", "", "lua", choices=("lua", "debug_sleep", "keys"), help="what keeps the thread busy"),
              Param("duration_ms", "ms", 10_000, 10, 600_000, "how long the stall lasts unless healed first"),
              Param("busy_ms", "ms", 0, 0, 600_000,
                    "lua: busy-reply-threshold while it runs (0 = the node's own, 5000 by default)"),
              Param("keys", "keys", 1_000_000, 1000, 20_000_000, "keys: size of the keyspace KEYS scans (db 9)"))

    def validate(self, topo: Topology) -> None:
        if topo.spec.node(self.target).kind != "redis":
            raise LabError(f"slow_command: {self.target} is not a data node", "target a redis-N node")
        if self.values["how"] == "keys" and topo.kind.redis_cluster:
            raise LabError("slow_command: how=keys needs the lab's scratch database 9, and a Cluster has only "
                           "db 0", "use how=lua or how=debug_sleep on the Cluster")

    def inject(self, topo: Topology) -> None:
        from faults import stall
        if self.values["how"] == "lua" and self.values["busy_ms"]:
            self.saved["lua-time-limit"] = stall.busy_threshold(topo, self.target)
            stall.set_busy_threshold(topo, self.target, self.values["busy_ms"])
        self._stall = stall.Stall(topo, self.target, self.values["how"], self.values["duration_ms"] / 1000,
                                  int(self.values["keys"]))
        self._stall.start()

    def heal(self, topo: Topology) -> None:
        """End the stall (also from another process: SCRIPT KILL, wait for DEBUG SLEEP to end, drop the
        KEYS keyspace), then restore busy-reply-threshold."""
        from faults import stall
        timeout_s = self.values["duration_ms"] / 1000 + 30
        running = getattr(self, "_stall", None)
        if running is not None:
            running.stop(timeout_s)
        else:
            stall.end(topo, self.target, self.values["how"], timeout_s)
        if "lua-time-limit" in self.saved:
            stall.set_busy_threshold(topo, self.target, self.saved["lua-time-limit"])

    def outcome(self) -> dict[str, Any]:
        """How long the stall lasted and what ended it (e.g. a SCRIPT KILL sent before the heal's: Sentinel's)."""
        running = getattr(self, "_stall", None)
        return running.outcome() if running is not None else {}


class Reshard(Fault):
    swept = False
    kind = "reshard"
    summary = ("Cluster resharding under load: move slots to another primary (CLUSTER SETSLOT IMPORTING / "
               "MIGRATING, MIGRATE batch keys at a time, SETSLOT NODE); heal finishes every half-moved slot")
    target_help = "the Cluster primary the slots move to"
    params = (Param("slots", "", None, help="slots to move, e.g. 100,200-210"),
              Param("batch", "keys", 10, 1, 100_000, "keys per MIGRATE"),
              Param("pause_ms", "ms", 50, 0, 60_000, "pause between two MIGRATE batches (a slow migration)"))

    def validate(self, topo: Topology) -> None:
        from faults import maintenance
        if not topo.kind.redis_cluster:
            raise LabError("reshard: needs the cluster topology", "redislab up cluster")
        topo.spec.node(self.target)
        maintenance.parse_slots(str(self.values["slots"]))

    def inject(self, topo: Topology) -> None:
        from faults import maintenance
        if topo.role(self.target) != "primary":
            raise LabError(f"reshard: {self.target} is not a Cluster primary", "target a primary: redislab status")
        self._resharder = maintenance.Resharder(topo, maintenance.parse_slots(str(self.values["slots"])),
                                                self.target, int(self.values["batch"]),
                                                self.values["pause_ms"] / 1000)
        self._resharder.start()

    def heal(self, topo: Topology) -> None:
        """Finish the migration (pauses cut short), then fix any slot left half-moved (also after the
        injecting process died): every slot ends with exactly one owner and no open state."""
        from faults import maintenance
        resharder = getattr(self, "_resharder", None)
        if resharder is not None:
            resharder.join(JOIN_TIMEOUT_S)
            self.saved["moved"] = {str(k): v for k, v in resharder.moved.items()}
            if resharder.error is not None:  # the migration stopped half way: heal finishes it, the history says so
                self.saved["error"] = f"{type(resharder.error).__name__}: {resharder.error}"[:300]
        self.saved["fixed"] = maintenance.fix_open_slots(topo)

    def outcome(self) -> dict[str, Any]:
        """Keys moved per slot, the slots heal had to finish, and the error that stopped the migration."""
        return {k: self.saved[k] for k in ("moved", "fixed", "error") if k in self.saved}


FAULTS: dict[str, type[Fault]] = {f.kind: f for f in (
    Kill, Stop, Pause, Latency, Bandwidth, Timeout, ResetPeer, SlowClose, LimitData, Down, Partition,
    ClientPause, ClientKill, Memory, Failover, Restart, SlowCommand, Reshard)}


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
