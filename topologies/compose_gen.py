"""Writes `topologies/compose/<topology>.yml` (and the Toxiproxy config each mounts) from the spec.

The Compose files are what users run on their own (`docker compose -f ... up`);
they are generated from the same spec and config code as the local backend so
the two cannot drift, and a test checks the committed files are current:

    python -m topologies.compose_gen          # rewrite
    python -m topologies.compose_gen --check  # exit 1 if a committed file is stale
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from topologies import config, images, topology_kinds
from topologies.spec import (
    HOST,
    PASSWORD_ENV,
    TOPOLOGIES,
    TOXIPROXY_API_PORT,
    NodeSpec,
    Options,
    TopologySpec,
    build_spec,
)

COMPOSE_DIR = Path(__file__).parent / "compose"
PASSWORD_REF = f"${{{PASSWORD_ENV}:?set {PASSWORD_ENV}, e.g. eval $$(redislab env)}}"
SECRET = "redislab_password"  # a Compose secret from $REDISLAB_PASSWORD: a file in the container, never env/args
READ_SECRET = f"$$(cat /run/secrets/{SECRET})"  # shell, in the container ($$: Compose's escape for $)
# A data node's config file (0600): its password and first primary, written when the container is
# created and kept across its restarts, so Sentinel's CONFIG REWRITE decides the role it restarts in
# (config.data_node_conf).
NODE_CONF = "/data/redis.conf"
SENTINEL_CONF = "/data/sentinel.conf"
_DEFAULTS = Options()
# Compose-time placeholders (text) in fields that hold numbers/bools at run time: the compose file is text
_PLACEHOLDERS: dict[str, Any] = {
    "appendonly": "${REDISLAB_APPENDONLY:-no}",
    "down_after_ms": f"${{REDISLAB_DOWN_AFTER_MS:-{_DEFAULTS.down_after_ms}}}",
    "failover_timeout_ms": f"${{REDISLAB_FAILOVER_TIMEOUT_MS:-{_DEFAULTS.failover_timeout_ms}}}",
    "node_timeout_ms": f"${{REDISLAB_NODE_TIMEOUT_MS:-{_DEFAULTS.node_timeout_ms}}}",
}
_PLACEHOLDER_OPTIONS = Options(**_PLACEHOLDERS)
# No Docker healthchecks: with ``interval: 1s`` their seven `runc exec` (sh + redis-cli) per
# second kept a quarter of a 2-core machine busy in bursts all run long, and the load
# generator fell behind during Sentinel runs (Docker Engine 20.10 has no start_interval).
# Start order is kept by the containers themselves (``_wait_for``); the lab waits for
# readiness with its own probes (topologies.health.wait_healthy).
WAIT_STEP_S = 0.1  # s between readiness probes inside a container
WAIT_LIMIT_S = 120  # s before a container gives up waiting and exits 1 (`up` then shows its log)


def project_name(topology: str) -> str:
    return f"redislab-{topology}"


def container_name(topology: str, service: str) -> str:
    return f"{project_name(topology)}-{service}"


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar


def _list(items: list[str]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


def _wait_for(ports: list[int], what: str) -> list[str]:
    """Shell lines that return once every port answers PING (the password in ``$$P``, passed
    to redis-cli through its environment, never an argument), or exit 1 after WAIT_LIMIT_S."""
    tries = int(WAIT_LIMIT_S / WAIT_STEP_S)
    return [f"for port in {' '.join(str(p) for p in ports)}; do",
            "  n=0",
            '  until REDISCLI_AUTH="$$P" redis-cli -p $$port ping 2>/dev/null | grep -q PONG; do',
            f"    n=$$((n + 1)); if [ $$n -ge {tries} ]; then",
            f'      echo "{what}: 127.0.0.1:$$port did not answer PING in {WAIT_LIMIT_S} s" >&2; exit 1; fi',
            f"    sleep {WAIT_STEP_S}",
            "  done",
            "done"]


def _service_head(spec: TopologySpec, name: str) -> list[str]:
    return [f"  {name}:", "    <<: *node", f"    container_name: {container_name(spec.name, name)}"]


def _script(lines: list[str]) -> list[str]:
    """A shell script as the service's command (``sh -c``), as a YAML block."""
    return ['    entrypoint: ["sh", "-c"]', "    command:", "      - |", *[f"        {line}" for line in lines]]


def _redis_service(spec: TopologySpec, node: NodeSpec) -> list[str]:
    args = config.redis_args(node, spec, bind="0.0.0.0", data_dir="/data", logfile="", replicaof_arg=False)
    replicaof = config.replicaof_line(node, spec).replace("\n", "\\n")  # printf's escape
    # printf is a shell builtin: the password reaches the 0600 file without any command line
    # (the same lines as config.data_node_conf; a password holding " or \ is not supported here)
    script = ["umask 077", f'P="{READ_SECRET}"',
              f"[ -f {NODE_CONF} ] || printf 'requirepass \"%s\"\\nmasterauth \"%s\"\\n{replicaof}' "
              f"\"$$P\" \"$$P\" > {NODE_CONF}",
              "exec " + " ".join(shlex.quote(a) for a in ["redis-server", NODE_CONF, *args])]
    return [*_service_head(spec, node.name), *_script(script)]


def _sentinel_service(spec: TopologySpec, node: NodeSpec) -> list[str]:
    conf = config.sentinel_conf(node, spec, "$${P}", bind="0.0.0.0", data_dir="/data", logfile="")
    primary = next(n for n in spec.redis_nodes if n.initial_role == "primary")
    # First start only: the primary answers through its proxied (announced) port, so Toxiproxy's
    # proxies and the primary are up. A restarted Sentinel (a fault) must not wait for a primary
    # that may be the node the fault killed: the container's own file system remembers the start.
    # The config file too is written once: Sentinel rewrites it (the current primary, its config
    # epoch, the known replicas and Sentinels), and a restart resumes from that, as the local
    # backend's does; a fresh file sent a restarted Sentinel back to the first primary (by then
    # perhaps a replica) until its peers' hello messages corrected it.
    started = "/tmp/redislab-started"
    script = ["umask 077", f'P="{READ_SECRET}"',
              f"if [ ! -e {started} ]; then", *[f"  {line}" for line in _wait_for([primary.port], node.name)],
              f"  : > {started}", "fi",
              f"[ -f {SENTINEL_CONF} ] || cat > {SENTINEL_CONF} <<EOF", *conf.splitlines(), "EOF",
              f"exec redis-server {SENTINEL_CONF} --sentinel"]
    return [*_service_head(spec, node.name), *_script(script)]


def _cluster_init(spec: TopologySpec) -> list[str]:
    first = spec.redis_nodes[0]
    create = " ".join(["redis-cli", *config.cluster_create_args(spec)])
    script = [f'P="{READ_SECRET}"', *_wait_for([n.port for n in spec.redis_nodes], "cluster-init"),
              'export REDISCLI_AUTH="$$P"',
              f"redis-cli -p {first.port} cluster info | grep -q cluster_slots_assigned:0 "
              f"&& {create} || echo cluster already formed"]
    deps = [f"      {n.name}:\n        condition: service_started" for n in spec.redis_nodes]
    return ["  cluster-init:", "    <<: *node", f"    container_name: {container_name(spec.name, 'cluster-init')}",
            "    depends_on:", *deps, *_script(script)]


def render(topology: str) -> tuple[str, str]:
    """(compose YAML, Toxiproxy config JSON) for ``topology``."""
    spec = build_spec(topology)
    spec = TopologySpec(spec.name, spec.nodes, _PLACEHOLDER_OPTIONS, spec.quorum)
    tox_file = f"toxiproxy-{topology}.json"
    published = spec.ports()
    lines = [
        f"# Redis {topology} topology behind Toxiproxy. Generated by `python -m topologies.compose_gen`",
        "# from topologies/spec.py and topologies/config.py: edit those, not this file.",
        f"# Run: eval $(redislab env) && docker compose -f topologies/compose/{topology}.yml up -d",
        "# Every node shares the Toxiproxy container's network namespace, so nodes, peers and",
        f"# clients on this machine all use the same {HOST} addresses (the proxied ports are the",
        "# announced ones). Ports are published on 127.0.0.1 only.",
        f"name: {project_name(topology)}",
        "",
        "# The password reaches containers as a secret (/run/secrets/...), never as an environment",
        "# variable or argument, so `docker inspect` does not show it.",
        f"x-password-required: {PASSWORD_REF}",
        "secrets:",
        f"  {SECRET}:",
        f"    environment: {PASSWORD_ENV}",
        "",
        "x-node: &node",
        f"  image: ${{REDISLAB_REDIS_IMAGE:-{images.REDIS_IMAGE}}}",
        "  network_mode: service:toxiproxy",
        "  depends_on:",
        "    toxiproxy:",
        "      condition: service_started",
        "  secrets:",
        f"    - {SECRET}",
        '  restart: "no"',
        "",
        "services:",
        "  toxiproxy:",
        f"    image: ${{REDISLAB_TOXIPROXY_IMAGE:-{images.TOXIPROXY_IMAGE}}}",
        f"    container_name: {container_name(topology, 'toxiproxy')}",
        f"    command: {_list(['-host=0.0.0.0', f'-port={TOXIPROXY_API_PORT}', '-config=/config/toxiproxy.json'])}",
        "    environment:",
        "      LOG_LEVEL: warn",
        "    volumes:",
        f"      - ./{tox_file}:/config/toxiproxy.json:ro",
        "    ports:",
        *[f'      - "{HOST}:{p}:{p}"' for p in published],
    ]
    for node in spec.nodes:
        lines += [""] + (_redis_service(spec, node) if node.kind == "redis" else _sentinel_service(spec, node))
    if topology_kinds.get(topology).redis_cluster:  # formed once every node answers
        lines += ["", *_cluster_init(spec)]
    return "\n".join(lines) + "\n", config.toxiproxy_config(spec, listen_host="0.0.0.0")


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for topology in TOPOLOGIES:
        compose, tox = render(topology)
        for path, text in ((COMPOSE_DIR / f"{topology}.yml", compose),
                           (COMPOSE_DIR / f"toxiproxy-{topology}.json", tox)):
            if check:
                if not path.exists() or path.read_text() != text:
                    stale.append(str(path))
            else:
                path.write_text(text)
    if stale:
        print("stale generated files (run: python -m topologies.compose_gen): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
