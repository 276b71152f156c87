"""Shared fixtures: the backends under test, a Docker daemon when needed, and `lab`.

Backends come from ``--backends`` (or ``REDISLAB_TEST_BACKENDS``), default both
``local,docker``. The session uses its own lab home, so it never touches a
user's running topology, and stops any Docker daemon it had to start.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

_home = tempfile.mkdtemp(prefix="redislab-test-home-")
os.environ["REDISLAB_HOME"] = _home  # before any topologies import reads it

from redislab.testing import LabSession  # noqa: E402
from topologies import api, dockerd  # noqa: E402

ALL_BACKENDS = ("local", "docker")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--backends", default=os.environ.get("REDISLAB_TEST_BACKENDS", ",".join(ALL_BACKENDS)),
                     help="comma-separated backends to test: local,docker")


def pytest_configure(config: pytest.Config) -> None:
    """The examples' ``redis_lab`` runs on the suite's backends unless --redislab-backend says otherwise."""
    if config.getoption("redislab_backend") is None:
        config.option.redislab_backend = ",".join(selected_backends(config))


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the plugin's ``redis_lab`` (the examples) start real topologies: integration tests."""
    for item in items:
        if "redis_lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


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


@pytest.fixture
def ready_backend(backend: str, request: pytest.FixtureRequest) -> str:
    """``backend``, with a Docker daemon answering when it is docker (for tests that start
    their topology themselves, e.g. through ``run_experiment``)."""
    if backend == "docker":
        request.getfixturevalue("docker_daemon").ensure()
    return backend


class LabManager:
    """``lab(name, backend)``: the suite's door to the redislab plugin's session (one topology at
    a time, shared with the examples' ``redis_lab``), which keeps a healthy topology up across tests
    and switches only when a test needs another."""

    def __init__(self, request: pytest.FixtureRequest, session: LabSession) -> None:
        self.request = request
        self.session = session

    def __call__(self, name: str, backend: str = "local") -> api.Topology:
        if backend == "docker":
            self.request.getfixturevalue("docker_daemon").ensure()
        if api.current() is not None and not self.session.owns(api.current()):
            api.down()  # a test's leftover (`redislab up` ...): this home is the suite's own
        return self.session.topology(name, backend)

    def down(self) -> None:
        self.session.down()
        if api.current() is not None:
            api.down()


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest, redis_lab_session: LabSession) -> Iterator[LabManager]:
    """``lab(name, backend="local")`` -> a healthy running topology (shared across tests)."""
    manager = LabManager(request, redis_lab_session)
    yield manager
    manager.down()


@pytest.fixture
def fresh_lab(lab: LabManager) -> Iterator[LabManager]:
    """Like ``lab`` but nothing is up before the test, and nothing after it."""
    lab.down()
    yield lab
    lab.down()
