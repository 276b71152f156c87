"""`redislab down` stops a Docker daemon the lab started only when nothing but the lab's containers are on it."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.conftest import DockerDaemon, LabManager
from topologies import api, dockerd

pytestmark = [pytest.mark.integration, pytest.mark.docker]
REDISLAB = [sys.executable, "-m", "redislab.cli"]
USER_IMAGE = "redislab-test/users-busybox:1"
USER_CONTAINER = "redislab-test-users-container"


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=check)


def build_user_image() -> str:
    """A FROM scratch busybox image built here (no pull): "the user's" image."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox-static is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy2(busybox, Path(tmp) / "busybox")
        (Path(tmp) / "Dockerfile").write_text('FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\n')
        _docker("build", "-q", "-t", USER_IMAGE, tmp)
    return USER_IMAGE


def test_down_leaves_a_lab_daemon_running_when_it_holds_someone_elses_container(fresh_lab: LabManager,
                                                                                docker_daemon: DockerDaemon) -> None:
    docker_daemon.ensure()
    if not dockerd.owned():
        pytest.skip("the Docker daemon was not started by the lab: tests never stop someone else's")
    fresh_lab("single", "docker")
    _docker("rm", "-f", USER_CONTAINER, check=False)
    _docker("run", "-d", "--name", USER_CONTAINER, build_user_image(), "sleep", "600")
    try:
        result = subprocess.run([*REDISLAB, "down"], capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, result.stderr
        assert "single (docker)" in result.stdout  # the topology went
        assert "left the Docker daemon the lab started running" in result.stdout
        assert USER_CONTAINER in result.stdout
        assert api.current() is None
        assert dockerd.daemon_answers() and dockerd.owned()
        assert _docker("inspect", "-f", "{{.State.Status}}", USER_CONTAINER).stdout.strip() == "running"
    finally:
        docker_daemon.ensure()  # (if `down` stopped it after all, its containers would outlive it)
        _docker("rm", "-f", USER_CONTAINER, check=False)
        _docker("rmi", "-f", USER_IMAGE, check=False)
    # nothing of anyone else's left: now the lab may stop the daemon it started
    assert dockerd.foreign_containers() == []
    assert dockerd.stop_if_owned().stopped
    assert not dockerd.daemon_answers()


def test_a_daemon_the_lab_starts_forwards_ports_without_docker_proxy(lab: LabManager) -> None:
    """Published ports in the kernel, not one docker-proxy process per port (whose CPU made the generator
    fall behind in a reconnect storm); the topology still answers on 127.0.0.1."""
    topo = lab("single", "docker")
    pid = dockerd.owned_pid()
    if pid is None:
        pytest.skip("the Docker daemon was not started by the lab: its settings are its owner's")
    daemon = psutil.Process(pid)
    assert "--userland-proxy=false" in daemon.cmdline()
    proxies = [p.pid for p in daemon.children(recursive=True) if p.name() == "docker-proxy"]
    assert proxies == [], f"docker-proxy processes of the lab's daemon: {proxies}"
    assert topo.client().ping()
