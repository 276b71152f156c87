"""The lab as a pytest plugin: real Redis topologies and faults in your own tests.

Registered by the ``pytest11`` entry point ``redislab`` of an installed
redis-failure-lab (disable with ``-p no:redislab``). It adds:

* the ``redis_lab`` fixture: a :class:`redislab.testing.RedisLab` over a healthy running
  topology (clients, addresses, faults as context managers, recorders); every fault the
  test injected is healed at its teardown, also when it failed or was interrupted;
* the marker ``@pytest.mark.redislab(topology=..., backend=...)`` and the options
  ``--redislab-topology`` / ``--redislab-backend`` (ini: ``redislab_topology`` /
  ``redislab_backend``) choosing them; a comma-separated list runs each test on each;
* ``redis_lab_session``: the session's :class:`redislab.testing.LabSession` (one topology
  at a time; what it started is torn down at the end of the session). While it lives,
  SIGTERM raises ``KeyboardInterrupt`` as Ctrl-C does (unless something else handles it).

Tests that use ``redis_lab`` get the ``redislab`` marker, so ``-m "not redislab"`` skips them.
The lab itself is imported only when a test asks for it.
"""
from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from topologies.spec import TOPOLOGIES  # light: no client, no lab home read at import

if TYPE_CHECKING:
    from redislab.testing import LabSession, RedisLab

MARKER = "redislab"
BACKENDS = ("auto", "docker", "local")  # = topologies.api.BACKENDS (not imported: it loads redis-py)
DEFAULT_TOPOLOGY = "single"
DEFAULT_BACKEND = "auto"  # docker when a daemon answers, else local processes
_MARKER_ARGS = ("topology", "backend")


@dataclass(frozen=True)
class LabTarget:
    """Which topology, on which backend, a test runs against."""

    topology: str
    backend: str

    @property
    def id(self) -> str:
        return f"{self.topology}-{self.backend}"


class LabConfigError(Exception):
    """A marker or option names something the lab does not know (one line)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("redislab", "redis-failure-lab (the redis_lab fixture)")
    group.addoption("--redislab-topology", default=None, metavar="NAME[,NAME]",
                    help=f"topology for redis_lab: {'|'.join(TOPOLOGIES)}; a comma-separated list runs each test "
                         f"on each (a redislab marker overrides it; default: ini redislab_topology, "
                         f"else {DEFAULT_TOPOLOGY})")
    group.addoption("--redislab-backend", default=None, metavar="NAME[,NAME]",
                    help=f"backend for redis_lab: {'|'.join(BACKENDS)}; a comma-separated list runs each test "
                         f"on each (default: ini redislab_backend, else {DEFAULT_BACKEND}: docker when a "
                         f"daemon answers, else local processes)")
    parser.addini("redislab_topology", f"default topology for redis_lab ({'|'.join(TOPOLOGIES)}, or a list)",
                  default=DEFAULT_TOPOLOGY)
    parser.addini("redislab_backend", f"default backend for redis_lab ({'|'.join(BACKENDS)}, or a list)",
                  default=DEFAULT_BACKEND)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(topology=..., backend=...): the topology ({'|'.join(TOPOLOGIES)}) and backend "
                   f"({'|'.join(BACKENDS)}) the redis_lab fixture uses for this test; overrides "
                   f"--redislab-topology / --redislab-backend")
    try:
        _configured(config, "topology")
        _configured(config, "backend")
    except LabConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _names(raw: str, what: str, accepted: tuple[str, ...], source: str) -> list[str]:
    names = [n.strip() for n in str(raw).split(",") if n.strip()]
    if not names:
        raise LabConfigError(f"{source}: no {what} given; accepted: {', '.join(accepted)}")
    unknown = [n for n in names if n not in accepted]
    if unknown:
        raise LabConfigError(f"{source}: unknown {what} {unknown[0]!r}; accepted: {', '.join(accepted)} "
                             f"(or a comma-separated list)")
    return list(dict.fromkeys(names))


def _configured(config: pytest.Config, what: str) -> list[str]:
    """The topologies or backends from the command line, else the ini file, else the default."""
    accepted = TOPOLOGIES if what == "topology" else BACKENDS
    raw = config.getoption(f"redislab_{what}")
    source = f"--redislab-{what}"
    if raw is None:
        raw, source = config.getini(f"redislab_{what}"), f"ini redislab_{what}"
    return _names(raw, what, accepted, source)


def lab_targets(config: pytest.Config, marker: pytest.Mark | None) -> list[LabTarget]:
    """Every (topology, backend) a test runs on: its marker's, else the configured ones."""
    kwargs = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and (marker.args or set(kwargs) - set(_MARKER_ARGS)):
        raise LabConfigError(f"@pytest.mark.{MARKER} takes only keyword arguments {' and '.join(_MARKER_ARGS)} "
                             f"(e.g. @pytest.mark.{MARKER}(topology='sentinel', backend='local')); got "
                             f"args={list(marker.args)} kwargs={sorted(kwargs)}")
    chosen = {}
    for what, accepted in (("topology", TOPOLOGIES), ("backend", BACKENDS)):
        if what in kwargs:
            chosen[what] = _names(kwargs[what], what, accepted, f"@pytest.mark.{MARKER}({what}=...)")
        else:
            chosen[what] = _configured(config, what)
    return [LabTarget(t, b) for t in chosen["topology"] for b in chosen["backend"]]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "redis_lab" not in metafunc.fixturenames:
        return
    try:
        found = lab_targets(metafunc.config, metafunc.definition.get_closest_marker(MARKER))
    except LabConfigError as exc:
        pytest.fail(str(exc), pytrace=False)
    # session scope: pytest groups the tests by topology, so the lab switches as rarely as it can
    metafunc.parametrize("redis_lab_target", found, ids=[t.id for t in found], scope="session")


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "redis_lab" in getattr(item, "fixturenames", ()) and item.get_closest_marker(MARKER) is None:
            item.add_marker(MARKER)


@pytest.fixture(scope="session")
def redis_lab_session() -> Iterator[LabSession]:
    """The session's lab: one topology at a time, reused while healthy; what it started is
    torn down (and a Docker daemon it started stopped) at the end of the session."""
    from redislab.testing import LabSession

    session = LabSession()
    restore = _sigterm_as_interrupt()
    try:
        yield session
    finally:
        try:
            session.close()
        finally:
            restore()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _sigterm_as_interrupt() -> Callable[[], None]:
    """SIGTERM (a CI job cancelled, ``timeout``) unwinds like Ctrl-C, so teardowns heal the
    faults; only when nobody else handles SIGTERM. Returns what restores the old handler."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return lambda: None
    signal.signal(signal.SIGTERM, _raise_interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return restore


@pytest.fixture
def redis_lab_target(request: pytest.FixtureRequest) -> LabTarget:
    """The (topology, backend) of this test (parametrized by the plugin; this default serves
    ``request.getfixturevalue("redis_lab")`` in tests it did not see at collection)."""
    try:
        return lab_targets(request.config, request.node.get_closest_marker(MARKER))[0]
    except LabConfigError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def redis_lab(request: pytest.FixtureRequest, redis_lab_session: LabSession, redis_lab_target: LabTarget,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisLab]:
    """A healthy topology, its clients and faults; every fault this test injected is healed
    at teardown (also when the test failed or was interrupted)."""
    from labcommon.errors import LabError
    from redislab.testing import RedisLab

    try:
        topo = redis_lab_session.topology(redis_lab_target.topology, redis_lab_target.backend)
    except LabError as exc:
        pytest.fail(f"redis_lab: {exc}", pytrace=False)
    stem = re.sub(r"\W+", "_", request.node.name)[:40]
    lab = RedisLab(topo, redis_lab_session.home, lambda: tmp_path_factory.mktemp(f"redislab-{stem}"))
    try:
        yield lab
    finally:
        try:
            lab.close()
        finally:
            request.node.add_report_section("teardown", "redislab", _summary(lab))


def _summary(lab: RedisLab) -> str:
    """What the test did to the lab, shown with a failed test's report."""
    lines = [f"topology {lab.name} ({lab.backend}), lab home {lab.home}"]
    lines += [f"fault {f.kind} {f.target} {f.fault.values}: {'healed' if f.healed else 'NOT HEALED'}"
              for f in lab.faults]
    lines += [f"history {rec.path}" for rec in lab.recorders]
    return "\n".join(lines)
