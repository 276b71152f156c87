"""The password is on no command line and in no container's configuration (issue 11)."""
from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import LabManager
from topologies.compose_gen import project_name
from topologies.spec import TOPOLOGIES

pytestmark = pytest.mark.integration


def _cmdlines_holding(secret: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if secret.encode() in raw:
            found.append(f"{entry.name}: {raw.replace(bytes(1), b' ')[:120]!r}")
    return found


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_the_password_is_on_no_command_line_and_in_no_container_config(lab: LabManager, backend: str,
                                                                       name: str) -> None:
    topo = lab(name, backend)
    secret = topo.password
    assert len(secret) >= 8
    assert _cmdlines_holding(secret) == []
    if backend == "local":
        be = topo.backend
        for node in topo.spec.nodes:
            argv = be._argv(node, "redis-server")  # type: ignore[attr-defined]  # the local backend (LocalBackend)
            assert secret not in " ".join(argv), f"{node.name} gets the password as an argument"
            conf = be._dir(node) / ("sentinel.conf" if node.kind == "sentinel" else "auth.conf")  # type: ignore[attr-defined]  # the local backend (LocalBackend)
            assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    else:
        label = f"label=com.docker.compose.project={project_name(name)}"
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", label],
                             capture_output=True, text=True, check=True).stdout.split()
        assert ids
        inspected = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True).stdout
        assert secret not in inspected, "`docker inspect` shows the password"
