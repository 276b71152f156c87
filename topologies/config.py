"""redis-server / redis-sentinel configuration and Toxiproxy proxy lists for a spec.

Shared by the local backend (which runs them) and the Compose generator (which
writes them into `topologies/compose/*.yml`), so the two cannot drift apart.
"""
from __future__ import annotations

import hashlib
import json

from topologies import topology_kinds
from topologies.spec import HOST, MASTER_NAME, NodeSpec, TopologySpec
from topologies.topology_kinds.base import HostOf


def _loopback(node: NodeSpec) -> str:
    """Local and Compose backends: every node is announced on 127.0.0.1 (its proxied port)."""
    return HOST


def conf_quote(value: str) -> str:
    """``value`` as one double-quoted token of a redis.conf line (Redis's sdssplitargs rules)."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() and ch.isascii():
            out.append(ch)
        else:
            out += [f"\\x{b:02x}" for b in ch.encode()]
    return '"' + "".join(out) + '"'


def auth_conf(password: str) -> str:
    """The config file a data node reads its password from (written 0600; never an argument,
    which would show in /proc/<pid>/cmdline and `docker inspect`)."""
    return f"requirepass {conf_quote(password)}\nmasterauth {conf_quote(password)}\n"


def first_primary(node: NodeSpec, spec: TopologySpec, host_of: HostOf = _loopback) -> tuple[str, int] | None:
    """The address (host, port) a data node replicates when first started, or None (a primary)."""
    if not node.replica_of:
        return None
    primary = spec.node(node.replica_of)
    return host_of(primary), primary.port


def data_node_conf(node: NodeSpec, spec: TopologySpec, password: str) -> str:
    """The config file a data node is created with (written 0600, once): its password and, for a
    replica, its first primary. Sentinel's failover ends with CONFIG REWRITE, so the file then
    holds the role Sentinel gave the node and a restarted node comes back in it, as a server
    restarted from its config file does (with ``--replicaof`` as an argument, a promoted replica
    came back as a replica of its own replica: no primary at all)."""
    return auth_conf(password) + replicaof_line(node, spec)


def replicaof_line(node: NodeSpec, spec: TopologySpec) -> str:
    """``replicaof HOST PORT`` and a newline for a replica's config file; '' for a primary."""
    first = first_primary(node, spec)
    return f"replicaof {first[0]} {first[1]}\n" if first else ""


def redis_args(node: NodeSpec, spec: TopologySpec, *, bind: str, data_dir: str, logfile: str,
               host_of: HostOf = _loopback, source_addr: bool = True, replicaof_arg: bool = True) -> list[str]:
    """Command-line arguments for a Redis data node, after ``redis-server <auth config file>``.
    They carry no secret: requirepass/masterauth come from the file (see ``auth_conf``).
    ``host_of`` gives the address each node is announced at (default 127.0.0.1);
    ``source_addr=False`` leaves out bind-source-addr (needed where peers are not on loopback).
    The kind adds its own (``TopologyKind.redis_args``: announced address, cluster mode).
    ``replicaof_arg``: the first primary as ``--replicaof`` (Kubernetes, whose pods start from
    scratch); False where it is a line of the node's config file (``data_node_conf``)."""
    opts = spec.options
    args = [
        "--port", str(node.direct_port),
        "--bind", bind,
        "--protected-mode", "no" if bind != HOST else "yes",
        *(["--bind-source-addr", node.source_addr] if source_addr else []),
        "--dir", data_dir,
        "--logfile", logfile,
        "--appendonly", _yes_no(opts.appendonly),
        "--appendfsync", "everysec",
        "--save", "",
        "--maxmemory-policy", "noeviction",
        # Start a replica's full sync at once instead of waiting 5 s for more replicas.
        "--repl-diskless-sync-delay", "0",
        # DEBUG (SLEEP, POPULATE): the slow_command fault uses it. A node bound to loopback takes it
        # from loopback only; a container's node sees the lab's connections arrive from the Docker
        # bridge (its published ports are on the host's 127.0.0.1, behind the password), so any.
        "--enable-debug-command", "local" if bind == HOST else "yes",
    ]
    args += topology_kinds.get(spec.name).redis_args(node, spec, host_of)
    first = first_primary(node, spec, host_of)
    if replicaof_arg and first:
        args += ["--replicaof", first[0], str(first[1])]
    return args


def sentinel_conf(node: NodeSpec, spec: TopologySpec, password: str, *, bind: str, data_dir: str,
                  logfile: str, host_of: HostOf = _loopback, source_addr: bool = True,
                  hostnames: bool = False) -> str:
    """The text of a sentinel.conf (Sentinel rewrites it, so write it to a writable path).
    ``hostnames``: the addresses ``host_of`` gives are DNS names (Sentinel resolves and announces
    names; all nodes must then be announced by name, never a mix of names and IPs)."""
    primary = next(n for n in spec.redis_nodes if n.initial_role == "primary")
    opts = spec.options
    lines = [
        f"port {node.direct_port}",
        f"bind {bind}",
        f"protected-mode {'no' if bind != HOST else 'yes'}",
        f"dir {data_dir}",
        f'logfile "{logfile}"',
        *([f"bind-source-addr {node.source_addr}"] if source_addr else []),
        *(["sentinel resolve-hostnames yes", "sentinel announce-hostnames yes"] if hostnames else []),
        f"sentinel announce-ip {host_of(node)}",
        f"sentinel announce-port {node.port}",
        f"requirepass {conf_quote(password)}",
        f"sentinel sentinel-pass {conf_quote(password)}",
        f"sentinel monitor {MASTER_NAME} {host_of(primary)} {primary.port} {spec.quorum}",
        f"sentinel auth-pass {MASTER_NAME} {conf_quote(password)}",
        f"sentinel down-after-milliseconds {MASTER_NAME} {opts.down_after_ms}",
        f"sentinel failover-timeout {MASTER_NAME} {opts.failover_timeout_ms}",
        f"sentinel parallel-syncs {MASTER_NAME} 1",
        # Fixed ids and the peers declared up front: discovery would otherwise
        # wait for hello messages (every 2 s) and INFO (every 10 s).
        f"sentinel myid {sentinel_id(node)}",
    ]
    lines += [f"sentinel known-replica {MASTER_NAME} {host_of(r)} {r.port}"
              for r in spec.redis_nodes if r.initial_role == "replica"]
    lines += [f"sentinel known-sentinel {MASTER_NAME} {host_of(s)} {s.port} {sentinel_id(s)}"
              for s in spec.sentinels if s.name != node.name]
    return "\n".join(lines) + "\n"


def _yes_no(value: bool | str) -> str:
    """'yes'/'no' for a flag; a string (a Compose ``${VAR:-default}`` placeholder) passes through."""
    return value if isinstance(value, str) else ("yes" if value else "no")


def sentinel_id(node: NodeSpec) -> str:
    """A stable 40-hex-digit Sentinel run id derived from the node's name."""
    return hashlib.sha1(f"redislab-{node.name}".encode()).hexdigest()


def toxiproxy_config(spec: TopologySpec, *, listen_host: str) -> str:
    """Toxiproxy's ``-config`` JSON: one enabled proxy per node port (and bus port)."""
    proxies = [
        {
            "name": p.name,
            "listen": f"{listen_host}:{p.listen_port}",
            "upstream": f"{HOST}:{p.upstream_port}",
            "enabled": True,
        }
        for p in spec.proxies()
    ]
    return json.dumps(proxies, indent=2) + "\n"


def cluster_create_args(spec: TopologySpec, host_of: HostOf = _loopback) -> list[str]:
    """`redis-cli` arguments that form the cluster from the proxied addresses (IPs: --cluster
    create does not take names)."""
    return ["--cluster", "create", *[f"{host_of(n)}:{n.port}" for n in spec.redis_nodes],
            "--cluster-replicas", "1", "--cluster-yes"]
