"""Shared fixtures: the backends under test, a Docker daemon when needed, and `lab`.

Backends come from ``--backends`` (or ``REDISLAB_TEST_BACKENDS``), default both
``local,docker``. The session uses its own lab home, so it never touches a
user's running topology, and stops any Docker daemon it had to start.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator

import pytest

_home = tempfile.mkdtemp(prefix="redislab-test-home-")
os.environ["REDISLAB_HOME"] = _home  # before any topologies import reads it

from topologies import api, dockerd  # noqa: E402
from topologies.errors import LabError  # noqa: E402

ALL_BACKENDS = ("local", "docker")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--backends", default=os.environ.get("REDISLAB_TEST_BACKENDS", ",".join(ALL_BACKENDS)),
                     help="comma-separated backends to test: local,docker")


def selected_backends(config: pytest.Config) -> list[str]:
    chosen = [b.strip() for b in config.getoption("--backends").split(",") if b.strip()]
    unknown = [b for b in chosen if b not in ALL_BACKENDS]
    if unknown:
        raise pytest.UsageError(f"unknown backend(s) {unknown}; accepted: {', '.join(ALL_BACKENDS)}")
    return chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected_backends(metafunc.config), scope="session")


class DockerDaemon:
    """Makes sure a daemon answers; remembers whether the session ever had to start one."""

    def __init__(self) -> None:
        self.started = False

    def ensure(self) -> None:
        # again before every Docker topology: a test may have stopped or restarted it
        self.started |= dockerd.ensure_running()


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[DockerDaemon]:
    """A Docker daemon for the session: started (as root) when none answers, stopped after."""
    daemon = DockerDaemon()
    daemon.ensure()
    yield daemon
    if daemon.started:
        api.down(all_=True)
        dockerd.stop_if_owned()


class LabManager:
    """Keeps at most one topology up across tests and switches only when a test needs another."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.topo: api.Topology | None = None

    def __call__(self, name: str, backend: str = "local") -> api.Topology:
        if backend == "docker":
            self.request.getfixturevalue("docker_daemon").ensure()
        topo = self.topo
        if topo is not None and topo.name == name and topo.backend.name == backend:
            try:
                topo.wait_healthy(timeout_s=30)
                return topo
            except LabError:
                pass  # a test left it broken: start afresh
        self.down()
        self.topo = api.up(name, backend=backend)
        return self.topo

    def down(self) -> None:
        if self.topo is not None or api.current() is not None:
            api.down()
        self.topo = None


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Iterator[Callable[..., api.Topology]]:
    """``lab(name, backend="local")`` -> a healthy running topology (shared across tests)."""
    manager = LabManager(request)
    yield manager
    manager.down()


@pytest.fixture
def fresh_lab(lab: LabManager) -> Iterator[LabManager]:
    """Like ``lab`` but nothing is up before the test, and nothing after it."""
    lab.down()
    yield lab
    lab.down()
