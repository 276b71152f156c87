"""Is a port free on 127.0.0.1, and if not, who holds it."""
from __future__ import annotations

import socket

import psutil

from labcommon.errors import LabError
from topologies.processes import process
from topologies.spec import HOST


def holder(port: int) -> str:
    """A short description of the process listening on TCP ``port``, e.g. ``redis-server (pid 4711)``
    ('' when unknown: nobody listens, or the listener is not ours to see)."""
    try:
        listening = [c.pid for c in psutil.net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid]
    except psutil.AccessDenied:
        return ""
    described = []
    for pid in dict.fromkeys(listening):
        proc = process(pid)
        try:
            described.append(f"{proc.name()} (pid {pid})" if proc is not None else f"pid {pid}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            described.append(f"pid {pid}")
    return ", ".join(described)


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
