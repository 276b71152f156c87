"""Is a port free on 127.0.0.1, and if not, who holds it."""
from __future__ import annotations

import shutil
import socket
import subprocess

from topologies.errors import LabError
from topologies.spec import HOST


def holder(port: int) -> str:
    """A short description of the process listening on ``port`` ('' when unknown)."""
    if shutil.which("ss"):
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
        if "users:" in out:
            return out.split("users:", 1)[1].strip()
    return ""


def is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def require_free(ports: list[int], what: str) -> None:
    """Raise a LabError naming the first port in use and its holder."""
    for port in ports:
        if not is_free(port):
            who = holder(port) or "another process"
            raise LabError(f"port {port} on {HOST} is already in use by {who}; {what} needs it",
                           "stop that process, or run `redislab down --all` if it is a lab leftover")
