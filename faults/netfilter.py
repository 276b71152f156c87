"""Real, two-way network partitions on loopback with iptables.

Every node's outgoing connections come from its own loopback source address
(``bind-source-addr 127.0.1.N``) and every node is reached on its proxied ports;
client groups "a"/"b" reach nodes on their own proxy ports, and default clients
are everything else (127.0.0.1 locally; in Docker, the host's connections arrive
from the bridge through the published ports). So "X cannot talk to Y" is a pair
of DROP rules: packets from X's source address to Y's ports, and Y's answers back
to X. Dropped (not rejected) packets make a partition look like one: connections
stall until their timeouts, established ones included.

The rules live in a chain of their own (``REDISLAB``) hooked into INPUT (every
packet delivered to a local socket passes it: loopback traffic between nodes, and
in Docker the host's client traffic arriving on the container's interface), in
the host's network namespace for the local backend and in the Toxiproxy
container's (shared by all nodes) for Docker. Healing flushes the chain.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from labcommon.errors import LabError, UnknownNameError
from topologies.spec import CLIENT_GROUPS, TopologySpec

CHAIN = "REDISLAB"
DEFAULT_CLIENTS = "clients"  # the lab's default clients: any source that is not a node
NODE_SOURCES = "127.0.1.0/24"  # where nodes' outgoing connections come from (bind-source-addr)


@dataclass(frozen=True)
class Member:
    """One party of a partition: a node, a named client group, or the default clients."""

    name: str
    source: str | None  # address its outgoing packets come from (None: match by destination port only)
    ports: tuple[int, ...]  # ports others reach it on (empty for clients)
    group: str | None = None  # client group name


def members(spec: TopologySpec) -> dict[str, Member]:
    """Every party a partition side may name: nodes, ``@a``/``@b`` client groups, ``@clients``."""
    out = {n.name: Member(n.name, n.source_addr, tuple(n.proxy_ports())) for n in spec.nodes}
    for g in CLIENT_GROUPS:
        out[f"@{g}"] = Member(f"@{g}", None, (), g)
    out[f"@{DEFAULT_CLIENTS}"] = Member(f"@{DEFAULT_CLIENTS}", f"!{NODE_SOURCES}", ())
    return out


def resolve(spec: TopologySpec, names: list[str]) -> list[Member]:
    known = members(spec)
    for name in names:
        if name not in known:
            raise UnknownNameError("partition member", name, list(known))
    return [known[n] for n in names]


def _cut_rules(spec: TopologySpec, src: Member, dst: Member) -> list[list[str]]:
    """iptables rule specs that stop ``src`` reaching ``dst`` (both directions of those connections)."""
    rules: list[list[str]] = []
    if dst.group is not None or not dst.ports:
        return rules  # clients accept no connections
    node = spec.node(dst.name)
    if src.group is not None:
        ports = [node.group_port(src.group)]
        for p in ports:
            rules.append(["-p", "tcp", "--dport", str(p), "-j", "DROP"])
            rules.append(["-p", "tcp", "--sport", str(p), "-j", "DROP"])
        return rules
    assert src.source is not None
    negate, addr = (["!"], src.source[1:]) if src.source.startswith("!") else ([], src.source)
    for p in dst.ports:
        rules.append([*negate, "-s", addr, "-p", "tcp", "--dport", str(p), "-j", "DROP"])
        rules.append([*negate, "-d", addr, "-p", "tcp", "--sport", str(p), "-j", "DROP"])
    return rules


def partition_rules(spec: TopologySpec, side_a: list[Member], side_b: list[Member]) -> list[list[str]]:
    """Rules cutting every member of ``side_a`` from every member of ``side_b``, both ways."""
    rules: list[list[str]] = []
    for x in side_a:
        for y in side_b:
            rules += _cut_rules(spec, x, y) + _cut_rules(spec, y, x)
    return rules


class Netfilter:
    """Applies and removes the lab's iptables rules in one network namespace."""

    def __init__(self, netns_pid: int | None = None) -> None:
        self.prefix = ["nsenter", "-t", str(netns_pid), "-n"] if netns_pid else []

    def _iptables(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if os.geteuid() != 0:
            raise LabError("a network partition needs root (iptables)",
                           "run as root, or use node isolation by pause/kill instead")
        binary = shutil.which("iptables")
        if binary is None:
            raise LabError("iptables is not installed", "run `make setup` (apt-get install iptables)")
        result = subprocess.run([*self.prefix, binary, "-w", *args], capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise LabError(f"iptables {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def _ensure_chain(self) -> None:
        if self._iptables("-L", CHAIN, "-n", check=False).returncode != 0:
            self._iptables("-N", CHAIN)
        if self._iptables("-C", "INPUT", "-j", CHAIN, check=False).returncode != 0:
            self._iptables("-I", "INPUT", "1", "-j", CHAIN)

    def apply(self, rules: list[list[str]]) -> None:
        self._ensure_chain()
        for rule in rules:
            self._iptables("-A", CHAIN, *rule)

    def rule_count(self) -> int:
        result = self._iptables("-S", CHAIN, check=False)
        if result.returncode != 0:
            return 0
        return sum(1 for line in result.stdout.splitlines() if line.startswith("-A"))

    def chain_exists(self) -> bool:
        return self._iptables("-S", CHAIN, check=False).returncode == 0

    def heal(self) -> None:
        """Flush and remove the lab's chain (idempotent)."""
        if os.geteuid() != 0 or shutil.which("iptables") is None:
            return
        self._iptables("-D", "INPUT", "-j", CHAIN, check=False)
        self._iptables("-D", "OUTPUT", "-o", "lo", "-j", CHAIN, check=False)  # hook of earlier versions
        self._iptables("-F", CHAIN, check=False)
        self._iptables("-X", CHAIN, check=False)
