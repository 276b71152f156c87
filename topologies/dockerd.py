"""The Docker daemon: does one answer, and start/stop one the lab owns.

A daemon the lab started is recorded in the lab home and stopped by whoever
stops the lab (`redislab down`, the end of a test session); a daemon that was
already running is never touched.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from topologies import binaries
from topologies.errors import LabError
from topologies.health import wait_until
from topologies.home import StateFile, lab_home
from topologies.processes import OwnedProcess, tail

_RECORD = "dockerd.json"


def daemon_answers(timeout_s: float = 5.0) -> bool:
    """True when `docker info` answers within ``timeout_s`` seconds."""
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                              timeout=timeout_s).returncode == 0
    except subprocess.TimeoutExpired:
        return False


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
    proc = OwnedProcess.spawn([dockerd], log)
    StateFile(_RECORD).write({"proc": proc.to_json()})
    try:
        wait_until(daemon_answers, timeout_s, "Docker daemon", lambda: tail(log, 15), interval_s=0.3)
    except BaseException:
        stop_if_owned()
        raise
    return True


def owned() -> bool:
    record = StateFile(_RECORD).read()
    return bool(record) and OwnedProcess.from_json(record["proc"]).alive()


def stop_if_owned() -> bool:
    """Stop the daemon if the lab started it. Returns True if it stopped one."""
    record = StateFile(_RECORD).read()
    if not record:
        return False
    proc = OwnedProcess.from_json(record["proc"])
    stopped = proc.alive()
    proc.terminate(timeout_s=20.0)
    StateFile(_RECORD).clear()
    return stopped
