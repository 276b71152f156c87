"""Container control through the Docker SDK: no `docker` process per call, and its errors in the lab's terms."""
from __future__ import annotations

import subprocess
from typing import Any

import docker.errors
import pytest
import requests

from labcommon.errors import ContainerNotFound, DockerError, LabError
from tests.conftest import LabManager
from topologies import docker as docker_backend
from topologies.docker_sdk import calling


def test_a_missing_container_is_container_not_found_with_the_daemons_words() -> None:
    with pytest.raises(ContainerNotFound) as err, calling("docker kill redislab-single-redis-1"):
        raise docker.errors.NotFound("404", explanation="No such container: redislab-single-redis-1")
    assert isinstance(err.value, LabError)
    assert err.value.message == "docker kill redislab-single-redis-1: No such container: redislab-single-redis-1"
    assert "redislab status" in err.value.hint
    assert isinstance(err.value.__cause__, docker.errors.NotFound)  # the cause is kept


def test_a_refusal_and_a_silent_daemon_are_docker_errors_with_a_hint() -> None:
    with pytest.raises(DockerError) as refused, calling("docker pause x"):
        raise docker.errors.APIError("409", explanation="Container x is not running")
    assert refused.value.message == "docker pause x failed: Container x is not running"
    assert not isinstance(refused.value, ContainerNotFound)
    with pytest.raises(DockerError) as silent, calling("docker inspect x"):
        raise requests.ConnectionError("connection refused")
    assert silent.value.message == "docker inspect x: the Docker daemon did not answer (ConnectionError)"
    assert "docker info" in silent.value.hint


@pytest.mark.integration
def test_docker_node_control_starts_no_process(lab: LabManager, monkeypatch: pytest.MonkeyPatch) -> None:
    topo = lab("single", "docker")
    be = topo.backend

    def no_process(argv: Any, *args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"node control started a process: {argv!r}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    try:
        assert be.node_state("redis-1") == "running"
        pid = be.netns_pid()
        assert pid is not None and pid > 1
        be.pause("redis-1")
        assert be.node_state("redis-1") == "paused"
        be.resume("redis-1")
        assert be.node_state("redis-1") == "running"
        assert "Ready to accept connections" in be.logs("redis-1", 200)
        assert {c["service"] for c in docker_backend.lab_containers()} >= {"toxiproxy", "redis-1"}
        be.stop("redis-1")
        assert be.node_state("redis-1") == "stopped"
        with pytest.raises(DockerError, match="is not running"):
            be.kill("redis-1")  # the daemon refuses: one line, not a traceback
    finally:
        monkeypatch.undo()
        if be.node_state("redis-1") == "paused":
            be.resume("redis-1")
        if be.node_state("redis-1") == "stopped":
            be.start("redis-1")
    topo.wait_healthy(timeout_s=30)
