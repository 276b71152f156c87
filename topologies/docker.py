"""The Docker backend: the Compose files in `topologies/compose/`, driven by `docker compose`.

Node control maps to `docker kill` (SIGKILL), `docker stop/start`, `docker pause/unpause`.
`stop_all` is `docker compose down -v`: containers, networks and volumes go.
"""
from __future__ import annotations

import os
import subprocess
from typing import Any

from topologies import dockerd, images
from topologies.compose_gen import COMPOSE_DIR, container_name, project_name
from topologies.errors import LabError
from topologies.spec import PASSWORD_ENV, TOPOLOGIES, TopologySpec

COMPOSE_TIMEOUT_S = 180  # a compose up/down that takes longer is stuck


def _run(argv: list[str], env: dict[str, str] | None = None, timeout_s: float = COMPOSE_TIMEOUT_S,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(argv[:4])} ...` did not finish within {timeout_s:.0f} s",
                       "is the Docker daemon healthy? `docker info`") from None
    if check and result.returncode != 0:
        raise LabError(f"`{' '.join(argv[:5])} ...` failed (exit {result.returncode})",
                       "see the output below", (result.stdout + result.stderr)[-2500:])
    return result


class DockerBackend:
    """Runs a topology with Docker Compose. Its state is the Compose project itself."""

    name = "docker"

    def __init__(self, spec: TopologySpec, password: str, state: dict[str, Any] | None = None) -> None:
        self.spec = spec
        self.password = password
        self.project = project_name(spec.name)
        self.file = COMPOSE_DIR / f"{spec.name}.yml"
        self.image_env: dict[str, str] = dict((state or {}).get("images", {}))

    def state(self) -> dict[str, Any]:
        return {"project": self.project, "images": self.image_env}

    def _env(self) -> dict[str, str]:
        opts = self.spec.options
        return {
            **os.environ,
            **self.image_env,
            PASSWORD_ENV: self.password,
            "REDISLAB_APPENDONLY": "yes" if opts.appendonly else "no",
            "REDISLAB_DOWN_AFTER_MS": str(opts.down_after_ms),
            "REDISLAB_FAILOVER_TIMEOUT_MS": str(opts.failover_timeout_ms),
            "REDISLAB_NODE_TIMEOUT_MS": str(opts.node_timeout_ms),
        }

    def _compose(self, *args: str, timeout_s: float = COMPOSE_TIMEOUT_S, check: bool = True
                 ) -> subprocess.CompletedProcess[str]:
        return _run(["docker", "compose", "-p", self.project, "-f", str(self.file), *args], self._env(),
                    timeout_s, check)

    def owns_anything(self) -> bool:
        if not dockerd.daemon_answers():
            return False
        out = _run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}"],
                   check=False).stdout
        return bool(out.strip())

    # -- lifecycle --------------------------------------------------------------
    def start_all(self) -> None:
        if not dockerd.daemon_answers():
            raise LabError("no Docker daemon answers", "start one: `redislab docker-daemon start` (root), "
                           "or use --backend local")
        if _run(["docker", "compose", "version"], check=False).returncode != 0:
            raise LabError("`docker compose` (Compose v2) is missing", "run `make setup`")
        self.image_env = images.ensure_images()
        self._compose("up", "-d", "--remove-orphans", "--quiet-pull")

    def stop_all(self) -> None:
        if dockerd.daemon_answers():
            self._compose("down", "-v", "--remove-orphans", "--timeout", "2", check=False)

    def available(self) -> bool:
        return dockerd.daemon_answers()

    def start_proxy(self) -> str:
        """Start the Toxiproxy container again after it died. Nodes still running lost their network
        (they share its namespace, which died with it): they are restarted. Returns what it did."""
        if self.node_state("toxiproxy") != "stopped":
            return ""
        stranded = [n.name for n in self.spec.nodes if self.node_state(n.name) != "stopped"]
        _run(["docker", "start", self._container("toxiproxy")])
        for name in stranded:
            if self.node_state(name) == "paused":
                self.resume(name)
            _run(["docker", "restart", "-t", "2", self._container(name)])
        return ("restarted the Toxiproxy container (it had died; its toxics died with it)"
                + (f" and {', '.join(stranded)}, whose network namespace died with it" if stranded else ""))

    def netns_pid(self) -> int | None:
        """Pid of the Toxiproxy container, whose network namespace every node shares."""
        out = _run(["docker", "inspect", "-f", "{{.State.Pid}}", self._container("toxiproxy")]).stdout.strip()
        if not out.isdigit() or out == "0":
            raise LabError("the Toxiproxy container is not running", "redislab down && redislab up ...")
        return int(out)

    # -- node control -----------------------------------------------------------
    def _container(self, name: str) -> str:
        if name != "toxiproxy":
            self.spec.node(name)
        return container_name(self.spec.name, name)

    def node_state(self, name: str) -> str:
        result = _run(["docker", "inspect", "-f", "{{.State.Status}}", self._container(name)], check=False)
        status = result.stdout.strip()
        return {"running": "running", "paused": "paused"}.get(status, "stopped")

    def kill(self, name: str) -> None:
        _run(["docker", "kill", "-s", "KILL", self._container(name)])

    def stop(self, name: str) -> None:
        _run(["docker", "stop", "-t", "10", self._container(name)])

    def start(self, name: str) -> None:
        if self.node_state(name) != "stopped":
            raise LabError(f"{name} is already running", f"stop or kill it first: redislab node stop {name}")
        _run(["docker", "start", self._container(name)])

    def pause(self, name: str) -> None:
        _run(["docker", "pause", self._container(name)])

    def resume(self, name: str) -> None:
        _run(["docker", "unpause", self._container(name)])

    def logs(self, name: str, lines: int = 20) -> str:
        result = _run(["docker", "logs", "--tail", str(lines), self._container(name)], check=False)
        return (result.stdout + result.stderr).strip()

    def all_logs(self, lines: int = 8) -> str:
        parts = []
        for name in ["toxiproxy", *[n.name for n in self.spec.nodes]]:
            text = self.logs(name, lines)
            if text:
                parts.append(f"--- {name} ({self.node_state(name)}) ---\n{text}")
        return "\n".join(parts)


def lab_containers() -> list[dict[str, str]]:
    """Every container of a lab Compose project on the daemon (any lab home, any state):
    ``{"name", "state", "project", "service"}``; [] when no daemon answers."""
    if not dockerd.daemon_answers():
        return []
    fmt = "\t".join(["{{.Names}}", "{{.State}}", '{{.Label "com.docker.compose.project"}}',
                     '{{.Label "com.docker.compose.service"}}'])
    result = _run(["docker", "ps", "-a", "--filter", "label=com.docker.compose.project", "--format", fmt],
                  check=False, timeout_s=30)
    out = []
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[2] in dockerd.LAB_PROJECTS:
            out.append(dict(zip(("name", "state", "project", "service"), parts)))
    return out


def container_pid(name: str) -> int | None:
    """Pid of a running container's first process (None when it is not running)."""
    out = _run(["docker", "inspect", "-f", "{{.State.Pid}}", name], check=False, timeout_s=30).stdout.strip()
    return int(out) if out.isdigit() and out != "0" else None


def remove_all_projects() -> list[str]:
    """`docker compose down -v` for every lab project that has containers (leftovers included)."""
    removed = []
    for topology in TOPOLOGIES:
        project = project_name(topology)
        ids = _run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
                   check=False).stdout.split()
        if ids:
            _run(["docker", "rm", "-f", "-v", *ids], check=False)
            _run(["docker", "network", "rm", f"{project}_default"], check=False)
            removed.append(f"{project} ({len(ids)} containers)")
    return removed
