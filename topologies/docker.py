"""The Docker backend: the Compose files in `topologies/compose/`, driven by `docker compose`.

Compose up/down is the only CLI use (the SDK has no Compose). Node control goes through the Docker
SDK's one client (`topologies/docker_sdk.py`): kill (SIGKILL), stop/start, pause/unpause, inspect,
logs. `stop_all` is `docker compose down -v`: containers, networks and volumes go.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
from typing import Any

from labcommon.errors import ContainerNotFound, DockerError, LabError
from labcommon.poll import wait_until
from topologies import docker_sdk, dockerd, images
from topologies.compose_gen import COMPOSE_DIR, container_name, project_name
from topologies.docker_sdk import calling
from topologies.spec import PASSWORD_ENV, TOPOLOGIES, TopologySpec

COMPOSE_TIMEOUT_S = 180  # a compose up/down that takes longer is stuck


def _run(argv: list[str], env: dict[str, str] | None = None, timeout_s: float = COMPOSE_TIMEOUT_S,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(argv[:4])} ...` did not finish within {timeout_s:.0f} s",
                       "is the Docker daemon healthy? `docker info`") from None
    except OSError as exc:
        raise LabError(f"cannot run `{argv[0]}`: {exc.strerror}", "install Docker's CLI, or use --backend local"
                       ) from exc
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

    def form_cluster(self) -> None:
        """Nothing: the Compose file's one-shot ``cluster-init`` service forms the cluster."""

    def owns_anything(self) -> bool:
        if not dockerd.daemon_answers():
            return False
        return bool(docker_sdk.containers(f"{dockerd.PROJECT_LABEL}={self.project}", quiet=True))

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

    def kill_proxy(self) -> None:
        """SIGKILL the lab's own Toxiproxy container (also when paused or hung)."""
        state = self.node_state("toxiproxy")
        if state == "paused":
            self._call("unpause", "toxiproxy")
        if state != "stopped":
            self._call("kill", "toxiproxy", signal="SIGKILL")
            wait_until(lambda: self.node_state("toxiproxy") == "stopped", 10, "the Toxiproxy container to stop")

    def start_proxy(self) -> str:
        """Start the Toxiproxy container again after it died. Nodes still running lost their network
        (they share its namespace, which died with it): they are restarted. Returns what it did."""
        if self.node_state("toxiproxy") != "stopped":
            return ""
        stranded = [n.name for n in self.spec.nodes if self.node_state(n.name) != "stopped"]
        self._call("start", "toxiproxy")
        for name in stranded:
            if self.node_state(name) == "paused":
                self.resume(name)
            self._call("restart", name, timeout=2)
        return ("restarted the Toxiproxy container (it had died; its toxics died with it)"
                + (f" and {', '.join(stranded)}, whose network namespace died with it" if stranded else ""))

    def netns_pid(self) -> int | None:
        """Pid of the Toxiproxy container, whose network namespace every node shares."""
        pid = container_pid(self._container("toxiproxy"))
        if pid is None:
            raise LabError("the Toxiproxy container is not running", "redislab down && redislab up ...")
        return pid

    # -- node control -----------------------------------------------------------
    def _container(self, name: str) -> str:
        if name != "toxiproxy":
            self.spec.node(name)
        return container_name(self.spec.name, name)

    def _call(self, action: str, name: str, **kwargs: Any) -> Any:
        """One Engine API call on node ``name``'s container (``action`` is an ``APIClient`` method)."""
        container = self._container(name)
        with calling(f"docker {action} {container}"):
            return getattr(docker_sdk.api(), action)(container, **kwargs)

    def node_state(self, name: str) -> str:
        """running | paused | stopped (exited, created, dead or missing): one inspect request."""
        try:
            status = self._call("inspect_container", name)["State"]["Status"]
        except ContainerNotFound:
            return "stopped"
        return {"running": "running", "paused": "paused"}.get(status, "stopped")

    def kill(self, name: str) -> None:
        self._call("kill", name, signal="SIGKILL")

    def stop(self, name: str) -> None:
        self._call("stop", name, timeout=10)

    def start(self, name: str) -> None:
        if self.node_state(name) != "stopped":
            raise LabError(f"{name} is already running", f"stop or kill it first: redislab node stop {name}")
        self._call("start", name)

    def pause(self, name: str) -> None:
        self._call("pause", name)

    def resume(self, name: str) -> None:
        self._call("unpause", name)

    def logs(self, name: str, lines: int = 20) -> str:
        """The last ``lines`` lines of the container's stdout and stderr ('' when it cannot be read)."""
        try:
            out: bytes = self._call("logs", name, tail=lines)
        except DockerError:
            return ""
        return out.decode(errors="replace").strip()

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
    out = []
    for c in docker_sdk.containers(dockerd.PROJECT_LABEL):
        labels = c.get("Labels") or {}
        project = labels.get(dockerd.PROJECT_LABEL, "")
        if project in dockerd.LAB_PROJECTS:
            out.append({"name": c["Names"][0].lstrip("/"), "state": c["State"], "project": project,
                        "service": labels.get("com.docker.compose.service", "")})
    return out


def container_pid(name: str) -> int | None:
    """Pid of a running container's first process (None when it is not running)."""
    try:
        with calling(f"docker inspect {name}"):
            pid = docker_sdk.api().inspect_container(name)["State"]["Pid"]
    except ContainerNotFound:
        return None
    return int(pid) or None


def resume_container(name: str) -> str:
    """Unpause container ``name`` (a lab leftover no topology record covers). Returns what it did."""
    with calling(f"docker unpause {name}"):
        docker_sdk.api().unpause(name)
    return f"resumed container {name}"


def remove_all_projects() -> list[str]:
    """`docker compose down -v` for every lab project that has containers (leftovers included)."""
    removed = []
    for topology in TOPOLOGIES:
        project = project_name(topology)
        ids = [c["Id"] for c in docker_sdk.containers(f"{dockerd.PROJECT_LABEL}={project}", quiet=True)]
        if ids:
            client = docker_sdk.api()
            for cid in ids:
                with contextlib.suppress(DockerError), calling(f"docker rm -f -v {cid[:12]}"):
                    client.remove_container(cid, v=True, force=True)
            with contextlib.suppress(DockerError), calling(f"docker network rm {project}_default"):
                client.remove_network(f"{project}_default")
            removed.append(f"{project} ({len(ids)} containers)")
    return removed
