"""The Docker daemon: does one answer, and start/stop one the lab owns.

A daemon the lab started is recorded in the lab home and stopped by whoever
stops the lab (`redislab down`, the end of a test session); a daemon that was
already running is never touched. Even a daemon the lab started is left running
when it holds any container (running or exited) that is not one of the lab's
Compose projects: someone else uses it, and stopping it would stop their work.
(Containers removed earlier are gone and cannot be harmed; exited ones that
remain count, since they show the daemon is used and may be restarted.)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from labcommon.errors import DockerError, LabError
from labcommon.poll import wait_until
from topologies import binaries, docker_sdk
from topologies.home import StateFile, lab_home
from topologies.processes import OwnedProcess, tail
from topologies.spec import TOPOLOGIES

_RECORD = "dockerd.json"
PROJECT_LABEL = "com.docker.compose.project"
LAB_PROJECTS = frozenset(f"redislab-{t}" for t in TOPOLOGIES)  # = compose_gen.project_name(t)
# A daemon the lab starts forwards published ports in the kernel (iptables DNAT, with route_localnet on its
# bridges so 127.0.0.1 reaches them), not through a docker-proxy process per port: measured on 2 cores,
# docker-proxy took about a quarter of the machine during a client reconnect storm (lock-kill on Sentinel,
# every failed acquire a new connection) and the generator fell behind (p99 send lag 10.8-21.2 ms in 4 of 4
# runs; 3.8-4.3 ms in 3 of 3 without it). Docker's own and the CIS benchmark's advice where hairpin NAT works.
DAEMON_ARGS = ("--userland-proxy=false",)


@dataclass(frozen=True)
class StopOutcome:
    """What ``stop_if_owned`` did: ``stopped`` the lab's daemon, or left it running for ``reason``."""

    stopped: bool
    reason: str = ""  # why an owned daemon was left running ('' when stopped or none owned)


def daemon_answers(timeout_s: float = 5.0) -> bool:
    """True when a Docker daemon answers a ping within ``timeout_s`` seconds."""
    return docker_sdk.ping(timeout_s)


def ensure_running(timeout_s: float = 60.0) -> bool:
    """Make sure a daemon answers; start one (as root) if none does.

    Returns True if this call started it (the caller then owns it: see ``stop_if_owned``).
    """
    if daemon_answers():
        return False
    if os.geteuid() != 0:
        raise LabError("no Docker daemon answers and only root can start one here",
                       "start Docker (e.g. `sudo dockerd &` or Docker Desktop), or use --backend local")
    dockerd = binaries.find("dockerd")
    log = lab_home() / "dockerd.log"
    proc = OwnedProcess.spawn([dockerd, *DAEMON_ARGS], log)
    StateFile(_RECORD).write({"proc": proc.to_json()})
    try:
        wait_until(daemon_answers, timeout_s, "Docker daemon", lambda: tail(log, 15), interval_s=0.3)
    except BaseException:
        _stop(OwnedProcess(proc.pid, proc.start_ticks))  # it never answered: nobody else can be using it
        raise
    return True


def owned() -> bool:
    return owned_pid() is not None


def owned_pid() -> int | None:
    """The pid of the daemon the lab started, while it runs; None when the lab owns none."""
    proc = _owned_process()
    return proc.pid if proc is not None and proc.alive() else None


def foreign_containers() -> list[str] | None:
    """Names of the containers on the daemon (any state) that are not the lab's; None when the
    daemon cannot be asked (then nobody can say it is unused)."""
    try:
        with docker_sdk.calling("list containers"):
            listed = docker_sdk.api().containers(all=True)
    except DockerError:
        return None
    return [c["Names"][0].lstrip("/") for c in listed
            if (c.get("Labels") or {}).get(PROJECT_LABEL) not in LAB_PROJECTS]


def _owned_process() -> OwnedProcess | None:
    record = StateFile(_RECORD).read()
    if not record:
        return None
    try:
        return OwnedProcess.from_json(record["proc"])
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _stop(proc: OwnedProcess | None) -> bool:
    stopped = proc is not None and proc.alive()
    if proc is not None:
        proc.terminate(timeout_s=20.0)
    StateFile(_RECORD).clear()
    return stopped


def stop_if_owned() -> StopOutcome:
    """Stop the daemon if the lab started it and nothing but the lab's containers are on it."""
    proc = _owned_process()
    if proc is None or not proc.alive():
        _stop(None)  # a stale record (the daemon is gone, or the pid was reused): forget it
        return StopOutcome(False)
    others = foreign_containers()
    if others is None:
        return StopOutcome(False, "it did not answer when asked which containers it runs, so it may hold "
                                  "someone else's (stop it yourself when you know it is unused)")
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        return StopOutcome(False, f"it also holds containers that are not the lab's ({shown}); the lab stops "
                                  f"it only when nothing but its own containers are on it")
    return StopOutcome(_stop(proc))
