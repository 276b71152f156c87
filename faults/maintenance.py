"""Planned maintenance as faults: a manual failover, a graceful (or crash) restart of one node
or a rolling restart of all of them, and Cluster slot migration (resharding).

The pieces the fault kinds' ``Failover``, ``Restart`` and ``Reshard`` classes are built from.
Every wait polls with a deadline; every call to a node goes to its *direct* port (a toxic on
its proxy must not stall the operator's own commands), except MIGRATE, which a node sends
to its peer's announced (proxied) address like every other route in the lab.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from labcommon.errors import LabError
from labcommon.poll import wait_until
from topologies.api import Topology
from topologies.spec import HOST, MASTER_NAME

OP_TIMEOUT_S = 5.0  # socket timeout of the operator's own commands
SWITCH_DEADLINE_S = 30.0  # a manual failover must be visible within this long


def direct(topo: Topology, node: str, **kwargs: Any) -> redis.Redis:
    """A client to ``node``'s own port for the operator's commands: one attempt each (redis-py's
    default retry could send a SENTINEL FAILOVER or a MIGRATE twice)."""
    kwargs.setdefault("socket_timeout", OP_TIMEOUT_S)
    kwargs.setdefault("socket_connect_timeout", OP_TIMEOUT_S)
    return topo.node_client(node, direct=True, retry=Retry(NoBackoff(), 0), **kwargs)


# -- who is what ------------------------------------------------------------------------------
def sentinel_primary(topo: Topology) -> str | None:
    """The node the Sentinels name as primary now (None when none answers)."""
    try:
        _host, port = topo.sentinel().discover_master(MASTER_NAME)
    except redis.RedisError:
        return None
    return next((n.name for n in topo.spec.redis_nodes if n.port == int(port)), None)


def cluster_view(topo: Topology, node: str) -> dict[str, dict[str, Any]]:
    """``CLUSTER NODES`` as ``node`` sees it: {name: {node_id, flags, master_id, slots, migrations}}."""
    by_port = {n.port: n.name for n in topo.spec.redis_nodes}
    with direct(topo, node, decode_responses=True) as c:
        raw = c.cluster("NODES")
    out = {}
    for addr, info in raw.items():
        port = int(addr.split(":")[1].split("@")[0])
        if port in by_port:
            out[by_port[port]] = info
    return out


def cluster_replicas_of(topo: Topology, primary: str) -> list[str]:
    """The replicas linked to ``primary`` now (its INFO replication: the authoritative view; the
    gossiped CLUSTER NODES can lag a just-finished failover)."""
    by_port = {p: n.name for n in topo.spec.redis_nodes for p in (n.port, n.direct_port)}  # announced or own
    with direct(topo, primary, decode_responses=True) as c:
        info = c.info("replication")
    linked = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
              and v.get("state") == "online"]
    return [by_port[int(r["port"])] for r in linked if int(r["port"]) in by_port]


# -- failover -----------------------------------------------------------------------------------
def sentinel_failover(topo: Topology, from_primary: str) -> None:
    """``SENTINEL FAILOVER lab`` through the first Sentinel that answers. Refused when
    ``from_primary`` is not the Sentinels' primary (the command would fail over another node)."""
    current = sentinel_primary(topo)
    if current != from_primary:
        raise LabError(f"failover: {from_primary} is not the primary (the Sentinels name {current})",
                       "target the current primary: see `redislab status`")
    errors = []
    for s in topo.spec.sentinels:
        try:
            with direct(topo, s.name) as c:
                c.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
            return
        except redis.RedisError as exc:
            errors.append(f"{s.name}: {exc}")
    raise LabError("failover: no Sentinel accepted SENTINEL FAILOVER: " + "; ".join(errors),
                   "is a failover already in progress? (failover-timeout)")


def cluster_failover(topo: Topology, primary: str, mode: str) -> str:
    """``CLUSTER FAILOVER [FORCE|TAKEOVER]`` sent to a replica of ``primary``; returns that replica."""
    if topo.role(primary) != "primary":
        raise LabError(f"failover: {primary} is not a primary", "target a Cluster primary: see `redislab status`")
    replicas = cluster_replicas_of(topo, primary)
    if not replicas:
        raise LabError(f"failover: {primary} has no replica to take over", "wait for the Cluster to heal")
    args = ["CLUSTER", "FAILOVER"] + ([mode.upper()] if mode != "default" else [])
    with direct(topo, replicas[0]) as c:
        c.execute_command(*args)
    return replicas[0]


def wait_new_primary(topo: Topology, old: str, timeout_s: float = SWITCH_DEADLINE_S) -> str:
    """Poll until the Sentinels name another primary than ``old``; returns it."""
    def promoted() -> str | None:
        p = sentinel_primary(topo)
        return p if p not in (None, old) else None
    return wait_until(promoted, timeout_s, f"Sentinel to promote a replica instead of {old}")


# -- restart ------------------------------------------------------------------------------------
def wait_answers(topo: Topology, node: str, timeout_s: float = 60.0) -> float:
    """Poll ``node`` (direct port) until it answers PING (not LOADING); returns the seconds it took."""
    started = time.monotonic()

    def pong() -> bool:
        try:
            with direct(topo, node, socket_timeout=0.5, socket_connect_timeout=0.5) as c:
                return bool(c.ping())
        except (redis.RedisError, OSError):
            return False
    wait_until(pong, timeout_s, f"{node} to answer after its restart", lambda: topo.backend.logs(node))
    return time.monotonic() - started


@dataclass
class Restarter:
    """Restarts nodes in a thread of its own, so the injection returns at once (the fault's window
    starts when the restart does). ``steps`` records what was done, with monotonic timestamps."""

    topo: Topology
    nodes: list[str]
    how: str  # "stop" (graceful, SIGTERM) or "kill" (SIGKILL: a crash a supervisor restarts)
    down_s: float  # seconds between the stop and the start
    pause_s: float  # seconds between two nodes (rolling)
    hook: str = "none"  # "failover": a primary is failed over (SENTINEL FAILOVER) before it is stopped
    steps: list[tuple[float, str]] = field(default_factory=list)
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="restart", daemon=True)
        self._thread.start()

    def _note(self, what: str) -> None:
        self.steps.append((time.monotonic(), what))

    def _run(self) -> None:
        try:
            for i, node in enumerate(self.nodes):
                if self._stop.is_set():
                    return
                if i and self._stop.wait(self.pause_s):
                    return
                self._restart(node)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    def _restart(self, node: str) -> None:
        if self.hook == "failover" and self.topo.spec.sentinels and sentinel_primary(self.topo) == node:
            self._note(f"SENTINEL FAILOVER away from {node}")
            sentinel_failover(self.topo, node)
            self._note(f"{wait_new_primary(self.topo, node)} promoted")
        (self.topo.kill if self.how == "kill" else self.topo.stop)(node)
        self._note(f"{self.how} {node}")
        if self._stop.wait(self.down_s):
            pass  # heal: start it at once
        self.topo.start(node)
        self._note(f"started {node}")
        self._note(f"{node} answers ({wait_answers(self.topo, node):.2f} s after its start)")
        primary = sentinel_primary(self.topo) if self.topo.spec.sentinels else None
        if primary is not None and primary != node:
            # as a supervisor's start script does (e.g. the Bitnami chart's): ask the Sentinels who the
            # primary is and replicate from it, instead of coming back with the role of the command line
            with direct(self.topo, node) as c:
                c.execute_command("REPLICAOF", HOST, self.topo.spec.node(primary).port)
            self._note(f"{node} replicates from {primary} (the Sentinels' primary)")

    def join(self, timeout_s: float) -> None:
        """Wait for the round to finish, pauses included (a rolling restart runs to its end); after
        ``timeout_s`` s the remaining pauses are cut short."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._stop.set()
                self._thread.join(30.0)


def restart_order(topo: Topology, nodes: list[str]) -> list[str]:
    """Replicas first, the primary last (as a StatefulSet rolls when its primary is pod 0)."""
    primary = sentinel_primary(topo) if topo.spec.sentinels else None
    return sorted(nodes, key=lambda n: (n == primary or topo.role(n) == "primary", nodes.index(n)))


# -- resharding ---------------------------------------------------------------------------------
def slot_owners(topo: Topology) -> tuple[dict[int, str], dict[str, str]]:
    """({slot: owner name}, {name: node id}) from the first node that answers."""
    for n in topo.spec.redis_nodes:
        try:
            view = cluster_view(topo, n.name)
        except redis.RedisError:
            continue
        owners: dict[int, str] = {}
        for name, info in view.items():
            for rng in info["slots"]:
                lo, hi = int(rng[0]), int(rng[-1])
                owners.update(dict.fromkeys(range(lo, hi + 1), name))
        return owners, {name: info["node_id"] for name, info in view.items()}
    raise LabError("reshard: no Cluster node answers CLUSTER NODES", "is the cluster up? `redislab status`")


def _primaries(topo: Topology) -> list[str]:
    return [n.name for n in topo.spec.redis_nodes if topo.role(n.name) == "primary"]


def move_slot(topo: Topology, slot: int, src: str, dst: str, ids: dict[str, str], batch: int,
              pause_s: float, stop: threading.Event | None = None) -> int:
    """Move one slot from ``src`` to ``dst`` as the Redis Cluster spec describes (SETSLOT IMPORTING on
    the target, MIGRATING on the source, MIGRATE the keys ``batch`` at a time, SETSLOT NODE on target,
    source, then every other primary). Returns the number of keys moved."""
    dst_node = topo.spec.node(dst)
    moved = 0
    with direct(topo, dst) as d, \
            direct(topo, src, decode_responses=True) as s:
        d.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src])
        s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst])
        while True:
            keys = s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            s.execute_command("MIGRATE", HOST, dst_node.port, "", 0, int(OP_TIMEOUT_S * 1000), "AUTH",
                              topo.password, "KEYS", *keys)
            moved += len(keys)
            if pause_s:
                (stop or threading.Event()).wait(pause_s)  # cut short by heal: the slot is finished at once
        assign_slot(topo, slot, dst, ids, first=(dst, src))
    return moved


def assign_slot(topo: Topology, slot: int, owner: str, ids: dict[str, str], first: tuple[str, ...] = ()) -> None:
    """``CLUSTER SETSLOT slot NODE owner`` on ``first`` then on every other primary that answers."""
    for name in dict.fromkeys([*first, *_primaries(topo)]):
        try:
            with direct(topo, name) as c:
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[owner])
        except redis.RedisError:
            if name in first:
                raise


@dataclass
class Resharder:
    """Moves ``slots`` to ``dst`` in a thread of its own (the injection returns at once)."""

    topo: Topology
    slots: list[int]
    dst: str
    batch: int
    pause_s: float
    moved: dict[int, int] = field(default_factory=dict)  # slot -> keys moved
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reshard", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            owners, ids = slot_owners(self.topo)
            for slot in self.slots:
                src = owners.get(slot)
                if src is None or src == self.dst:
                    continue
                self.moved[slot] = move_slot(self.topo, slot, src, self.dst, ids, self.batch,
                                             0.0 if self._stop.is_set() else self.pause_s, self._stop)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    def join(self, timeout_s: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)


def open_slots(topo: Topology) -> list[tuple[int, str, str, str]]:
    """Slots left half-migrated: ``(slot, state, node, peer)`` with state ``migrating`` (node -> peer)
    or ``importing`` (node <- peer), from each node's view of itself."""
    out = []
    for n in topo.spec.redis_nodes:
        try:
            view = cluster_view(topo, n.name)
        except redis.RedisError:
            continue
        by_id = {info["node_id"]: name for name, info in view.items()}
        for m in view.get(n.name, {}).get("migrations", []):
            out.append((int(m["slot"]), m["state"], n.name, by_id.get(m["node_id"], m["node_id"])))
    return out


def fix_open_slots(topo: Topology, note: Callable[[str], None] = lambda s: None) -> int:
    """Finish every half-done migration towards its target (as ``redis-cli --cluster fix`` does):
    the remaining keys are moved and the target is made the owner everywhere; an importing state
    without a migrating source is cleared (SETSLOT STABLE). Returns how many slots were fixed."""
    found = open_slots(topo)
    if not found:
        return 0
    _owners, ids = slot_owners(topo)
    migrating = {(slot, node): peer for slot, state, node, peer in found if state == "migrating"}
    fixed = set()
    for (slot, src), dst in migrating.items():
        move_slot(topo, slot, src, dst, ids, batch=1000, pause_s=0.0)
        note(f"finished moving slot {slot} from {src} to {dst}")
        fixed.add(slot)
    for slot, state, node, _peer in found:
        if state == "importing" and slot not in fixed:
            with direct(topo, node) as c:
                c.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
            note(f"cleared slot {slot}'s importing state on {node}")
            fixed.add(slot)
    return len(fixed)


def parse_slots(raw: str) -> list[int]:
    """``"100,200-202"`` -> [100, 200, 201, 202]; LabError on anything else."""
    out: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        try:
            lo, _, hi = part.partition("-")
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise LabError(f"reshard: slots={raw!r} is not a list of slots", "e.g. slots=100,200-210") from None
        if not 0 <= a <= b <= 16383:
            raise LabError(f"reshard: slot range {part!r} is out of range; accepted: 0..16383")
        out += range(a, b + 1)
    if not out:
        raise LabError("reshard: no slot given", "e.g. slots=100,200-210")
    return list(dict.fromkeys(out))
