"""A target whose nodes are containers the lab did not start, controlled through the target
file's ``docker`` driver: the kill really kills the container and the heal really starts it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from experiments import registry
from experiments.target_fit import runnable
from labcommon.poll import wait_until
from targets.target import TargetTopology, load
from tests.conftest import DockerDaemon
from topologies import images

pytestmark = [pytest.mark.integration, pytest.mark.docker]
REDISLAB = [sys.executable, "-m", "redislab.cli"]
CONTAINER = "redislab-targettest-redis-1"  # not a Compose project of the lab: the lab does not own it
PORT = 27501
PASSWORD = "target-docker-secret"
PASSWORD_ENV = "TARGET_DOCKER_TEST_PASSWORD"
EXPERIMENT = "cache-aside-kill"


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def _started_at() -> str:
    return _docker("inspect", "-f", "{{.State.StartedAt}}", CONTAINER)


@pytest.fixture
def container(docker_daemon: DockerDaemon) -> Iterator[str]:
    docker_daemon.ensure()
    image = images.ensure_images()["REDISLAB_REDIS_IMAGE"]
    subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, timeout=60)
    _docker("run", "-d", "--name", CONTAINER, "-p", f"127.0.0.1:{PORT}:6379", "--entrypoint", "redis-server",
            image, "--requirepass", PASSWORD, "--save", "", "--appendonly", "no", "--protected-mode", "no")
    try:
        wait_until(lambda: redis.Redis(port=PORT, password=PASSWORD, socket_timeout=1).ping(), 30,
                   "the target's container")
        yield CONTAINER
    finally:
        subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, timeout=60)


def test_docker_driver_kills_and_restarts_the_targets_container(container: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "target.yml"
    path.write_text(textwrap.dedent(f"""
        name: docker-single
        kind: single
        password_env: {PASSWORD_ENV}
        driver: {{type: docker}}
        nodes:
          - {{name: redis-1, address: "127.0.0.1:{PORT}", container: {container}}}
        limits: {{key_prefix: "labtest:", allowed_faults: [kill], allow_destructive: true}}
        """))
    env = {**os.environ, PASSWORD_ENV: PASSWORD}
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    ok, why = runnable(TargetTopology(load(path)), registry.get(EXPERIMENT))
    assert ok, why
    before = _started_at()
    out = tmp_path / "results"
    res = subprocess.run([*REDISLAB, "run", EXPERIMENT, "--target", str(path), "--duration", "8", "--cycles", "1",
                          "--out", str(out)], capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    run_dir = next(p for p in out.iterdir() if p.is_dir() and EXPERIMENT in p.name)
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in history if r["type"] == "event"]
    assert "fault_inject" in kinds and "fault_heal" in kinds
    assert _started_at() != before  # killed, then started again by the driver
    assert _docker("inspect", "-f", "{{.State.Status}}", container) == "running"
    assert redis.Redis(port=PORT, password=PASSWORD).keys("labtest:*") == []  # the run deleted its keys
    heal = subprocess.run([*REDISLAB, "heal", "--target", str(path)], capture_output=True, text=True, timeout=120,
                          env=env)
    assert heal.returncode == 0, heal.stderr
