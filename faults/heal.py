"""`redislab heal`: back to a clean state from any state, touching only what the lab owns.

Works with a topology up, half dead (a node or Toxiproxy gone, the Docker daemon
restarted), or with none at all. In order:

1. Toxiproxy of the recorded topology restarted if it died (Docker: with the nodes that
   lived in its network namespace), then every toxic removed and every proxy enabled;
   with no topology, only a Toxiproxy that is a lab leftover (a process in the lab's run
   directory, a lab Compose container) is reset.
2. The lab's iptables chain removed in every namespace it used: this machine's, each
   recorded partition's (pid + start time checked) and each lab Toxiproxy container's.
3. Paused nodes resumed, stopped nodes started (the recorded topology only).
4. Recorded faults that only their own heal undoes: client processes resumed (only the
   very process paused: pid + start time), maxmemory restored.
5. Leftovers resumed: paused lab containers, paused processes in the lab's run
   directory, paused registered client processes.
6. ``faults.json`` emptied: records whose target is gone are reported as cleared.

Returns what it did, one line each. Raises LabError only when something that is still
there could not be undone (iptables or Toxiproxy failing while present).
"""
from __future__ import annotations

import os
import shutil
import signal
from typing import Any

import redis

from faults import kinds, netfilter, ownership, records
from faults.events import FAULT_HEAL, EventLog
from faults.toxiproxy_api import ToxiproxyAPI, ToxiproxyGone
from labcommon.errors import LabError
from topologies.api import Topology
from topologies.processes import OwnedProcess


class _Report:
    def __init__(self) -> None:
        self.done: list[str] = []
        self.problems: list[str] = []


def heal_all(topo: Topology | None, events: EventLog | None = None) -> list[str]:
    """Undo everything the lab can find (see the module docstring); returns what it did."""
    log = events or EventLog()
    rep = _Report()
    live = _live(topo, rep)
    faults, unreadable = _parse(records.active())
    if unreadable:
        rep.done.append(f"cleared {unreadable} unreadable fault record(s)")
    if live is not None:
        _step(rep, "restart Toxiproxy", lambda: live.start_proxy())
    _reset_toxiproxy(live, rep)
    _remove_partitions(faults, rep)
    if live is not None:
        _resume_nodes(live, rep)
    for fault in faults:
        if not fault.swept:
            _heal_own(fault, live, rep, log)
        elif live is None:
            rep.done.append(f"cleared the record of {fault!r}: its topology is gone")
        else:
            log.record(FAULT_HEAL, fault.kind, fault.target, fault.values)
            rep.done.append(f"healed {fault!r}")
    _resume_leftovers(rep)
    records.clear()
    if rep.problems:
        raise LabError("heal could not undo everything: " + "; ".join(rep.problems),
                       "run `redislab heal` again; `redislab down --all` removes the lab's leftovers")
    return rep.done


def _live(topo: Topology | None, rep: _Report) -> Topology | None:
    """The recorded topology if any of it is still there to heal."""
    if topo is None:
        return None
    try:
        if topo.backend.available() and topo.backend.owns_anything():
            return topo
    except LabError:
        pass
    rep.done.append(f"the recorded topology {topo.name} ({topo.backend.name}) is gone or its backend does not "
                    "answer: nothing of it to heal (`redislab down` clears the record)")
    return None


def _parse(raw: list[dict[str, Any]]) -> tuple[list[kinds.Fault], int]:
    faults, unreadable = [], 0
    for record in raw:
        try:
            faults.append(kinds.from_record(record))
        except (LabError, KeyError, TypeError, ValueError, AttributeError):
            unreadable += 1
    return faults, unreadable


def _step(rep: _Report, what: str, fn: Any) -> None:
    """Run one step; its note goes to ``done``, a failure to ``problems``."""
    try:
        note = fn()
    except LabError as exc:
        rep.problems.append(f"{what}: {exc.line()}")
        return
    if note:
        rep.done.append(note)


# -- Toxiproxy ------------------------------------------------------------------------------
def _lab_toxiproxy_leftover() -> bool:
    """True when a lab Toxiproxy runs without a recorded topology (so port 18474 is the lab's)."""
    from topologies import docker, local
    if any("toxiproxy" in cmd for _p, cmd in local.strays()):
        return True
    return any(c["service"] == "toxiproxy" and c["state"] == "running" for c in docker.lab_containers())


def _reset_toxiproxy(live: Topology | None, rep: _Report) -> None:
    if live is None and not _lab_toxiproxy_leftover():
        return

    def reset() -> str:
        api = ToxiproxyAPI()
        try:
            dirty = bool(api.disabled()) or any(api.toxics().values())
            api.reset()
        except ToxiproxyGone:
            return "Toxiproxy is not running: no toxics to remove"
        return "removed toxics and re-enabled proxies" if dirty else ""

    _step(rep, "reset Toxiproxy", reset)


# -- partitions -----------------------------------------------------------------------------
def _namespaces(faults: list[kinds.Fault]) -> dict[int | None, str]:
    """Every network namespace that may hold the lab's chain: pid inside it (None: this machine's)."""
    from topologies import docker
    found: dict[int | None, str] = {None: "this machine"}
    for fault in faults:
        netns = fault.saved.get("netns") if isinstance(fault, kinds.Partition) else None
        if netns:
            proc = OwnedProcess.from_json(netns)
            if proc.alive():
                found[proc.pid] = f"the namespace of pid {proc.pid}"
    for c in docker.lab_containers():
        if c["service"] == "toxiproxy" and c["state"] in ("running", "paused"):
            pid = docker.container_pid(c["name"])
            if pid is not None:
                found[pid] = f"container {c['name']}"
    return found


def _remove_partitions(faults: list[kinds.Fault], rep: _Report) -> None:
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return  # without root the lab cannot have added rules
    for pid, where in _namespaces(faults).items():
        def remove(pid: int | None = pid, where: str = where) -> str:
            nf = netfilter.Netfilter(pid)
            count = nf.rule_count()
            nf.heal()
            if nf.chain_exists():
                raise LabError(f"the {netfilter.CHAIN} chain in {where} is still there after removing it")
            return f"removed {count} partition rules ({where})" if count else ""
        _step(rep, "remove partitions", remove)


# -- nodes and processes --------------------------------------------------------------------
def _resume_nodes(topo: Topology, rep: _Report) -> None:
    for node in topo.spec.nodes:
        def fix(name: str = node.name) -> str:
            state = topo.backend.node_state(name)
            if state == "paused":
                topo.resume(name)
                return f"resumed {name}"
            if state == "stopped":
                topo.start(name)
                return f"started {name}"
            return ""
        _step(rep, f"restore {node.name}", fix)


def _heal_own(fault: kinds.Fault, live: Topology | None, rep: _Report, log: EventLog) -> None:
    """Faults the sweep does not cover: client processes (pid + start time checked) and memory."""
    if isinstance(fault, kinds.ClientKill):
        rep.done.append(f"cleared the record of {fault!r} (a killed process stays dead)")
        return
    if isinstance(fault, kinds.ClientPause):
        if fault.process() is None:
            rep.done.append(f"cleared the record of {fault!r}: that process is gone")
            return
        fault.heal(live)
        log.record(FAULT_HEAL, fault.kind, fault.target, fault.values)
        rep.done.append(f"healed {fault!r}")
        return
    if live is None:
        rep.done.append(f"cleared the record of {fault!r}: its topology is gone")
        return
    try:
        fault.heal(live)
    except (redis.RedisError, LabError) as exc:
        rep.done.append(f"cleared the record of {fault!r}: the node did not answer ({type(exc).__name__}); "
                        "a restart brings back its configured values")
        return
    log.record(FAULT_HEAL, fault.kind, fault.target, fault.values)
    rep.done.append(f"healed {fault!r}")


def _resume_leftovers(rep: _Report) -> None:
    """Paused things the lab owns that no topology record covers."""
    from topologies import docker, local
    for c in docker.lab_containers():
        if c["state"] == "paused":
            _step(rep, f"resume container {c['name']}", lambda name=c["name"]: docker.resume_container(name))
    for proc, cmd in local.strays():
        if proc.state() == "paused":
            proc.signal(signal.SIGCONT)
            rep.done.append(f"resumed lab process {proc.pid} ({cmd[:50]})")
    for client in ownership.clients():
        proc = OwnedProcess(client.pid, client.start_ticks)
        if proc.state() == "paused":
            proc.signal(signal.SIGCONT)
            rep.done.append(f"resumed lab client {client.pid} ({client.label})")


def after_down() -> list[str]:
    """After `down`: remove the lab's chain from this machine's namespace (a local topology's
    partition outlives its processes; a container's died with it) and forget the fault records
    of the topology that is gone. Returns what it removed."""
    removed = []
    if os.geteuid() == 0 and shutil.which("iptables") is not None:
        nf = netfilter.Netfilter()
        if nf.chain_exists():
            count = nf.rule_count()
            nf.heal()
            removed.append(f"{count} partition rules (this machine)")
    left = records.active()
    if left:
        records.clear()
        removed.append(f"{len(left)} fault record(s) of the topology")
    return removed
