"""One topology at a time for a test session: reuse a healthy one, start what is missing,
tear down only what this session started.

    session = LabSession()
    topo = session.topology("sentinel", "local")   # healthy, or LabError saying why not
    ...
    session.close()                                 # at the end of the session

A topology that is already up and healthy is reused whoever started it (a user's
``redislab up``, another session), but only one this session started is ever torn
down or replaced: a different one that someone else started is refused with one line
naming it. A Docker daemon is started (as root) when the docker backend needs one and
none answers, and stopped at ``close`` if this session started it and nothing but the
lab's containers are on it (``topologies.dockerd``).
"""
from __future__ import annotations

from pathlib import Path

from labcommon.errors import LabError
from topologies import api, dockerd
from topologies.home import lab_home

REUSE_HEALTH_TIMEOUT_S = 30.0  # how long a running topology may take to be healthy again (after a failover)


class LabSession:
    """The topology a test session uses, and what the session owns."""

    def __init__(self) -> None:
        self.home: Path = lab_home()  # pinned: tests may change HOME (pytester does)
        self._started: tuple[str, str] | None = None  # (topology, backend) this session brought up
        self._daemon_started = False

    def owns(self, topo: api.Topology | None) -> bool:
        """True when ``topo`` is the topology this session started (and has not torn down)."""
        return topo is not None and self._started == (topo.name, topo.backend.name)

    def topology(self, name: str, backend: str = "auto") -> api.Topology:
        """A healthy running topology ``name`` on ``backend`` (auto|docker|local)."""
        kind = api.resolve_backend(backend)
        if kind == "docker":
            self._daemon_started |= dockerd.ensure_running()
        current = api.current()
        if current is not None and not current.backend.owns_anything():
            current = None  # a stale record: nothing of it runs (``api.up`` cleans it)
        if current is not None:
            ours = self.owns(current)
            if (current.name, current.backend.name) == (name, kind):
                try:
                    current.wait_healthy(timeout_s=REUSE_HEALTH_TIMEOUT_S)
                    return current
                except LabError as exc:
                    if not ours:
                        raise LabError(f"topology {name} ({kind}) is up but not healthy, and this test "
                                       f"session did not start it ({exc.message})",
                                       "run `redislab heal`, or `redislab down` so the tests start their own"
                                       ) from None
            elif not ours:
                raise LabError(f"topology {current.name} ({current.backend.name}) is up and this test session "
                               f"did not start it; the lab runs one topology at a time",
                               f"run `redislab down`, or test against it: --redislab-topology {current.name} "
                               f"--redislab-backend {current.backend.name}")
            self.down()  # ours: unhealthy, or another kind than wanted
        topo = api.up(name, backend=kind)
        self._started = (topo.name, topo.backend.name)
        return topo

    def down(self) -> None:
        """Tear down the topology this session started, if it is still the one up."""
        if self._started is not None and self.owns(api.current()):
            api.down()
        self._started = None

    def close(self) -> None:
        """End of the session: tear down what it started, stop a Docker daemon it started."""
        try:
            self.down()
        finally:
            if self._daemon_started:
                self._daemon_started = False
                dockerd.stop_if_owned()
