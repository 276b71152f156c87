"""Locating the programs the lab runs, with an install hint when one is missing."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from labcommon.errors import LabError

TOXIPROXY_VERSION = "v2.12.0"
_EXTRA_DIRS = [Path("/usr/local/bin"), Path.home() / ".local" / "bin", Path.home() / "go" / "bin"]
_HINTS = {
    "redis-server": "run `make setup` (as root it installs: apt-get install redis-server redis-sentinel redis-tools)",
    "redis-cli": "run `make setup` (as root it installs: apt-get install redis-tools)",
    "toxiproxy-server": ("run `make setup`, or: CGO_ENABLED=0 go install "
                         f"github.com/Shopify/toxiproxy/v2/cmd/server@{TOXIPROXY_VERSION} and put the binary on PATH "
                         "as toxiproxy-server"),
    "docker": "run `make setup` (as root it installs: apt-get install docker.io)",
    "dockerd": "run `make setup` (as root it installs: apt-get install docker.io)",
}


def find(name: str) -> str:
    """Absolute path of ``name`` from PATH or the usual install dirs; LabError if absent."""
    found = shutil.which(name)
    if found:
        return found
    for d in _EXTRA_DIRS:
        candidate = d / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise LabError(f"{name} is not installed", _HINTS.get(name, f"install {name}"))


def have(name: str) -> bool:
    try:
        find(name)
        return True
    except LabError:
        return False
