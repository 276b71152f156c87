"""A Sentinel deployment started WITHOUT the lab's topology code: plain redis-server /
redis-sentinel processes and a separately started toxiproxy-server, ports 27000-27499,
a password, everything under one temporary directory. Used by the target tests.

Configured like the lab's own Sentinel topology where that shapes a fault's figures (Sentinel
down-after-milliseconds 1000 and failover-timeout 10000, quorum 2, repl-diskless-sync-delay 0,
no persistence), so the tests can compare the figures of both (``redislab compare``).

Ports: node i (1..3) direct 27100+i, announced (proxy) 27000+i, group a 27200+i, group b
27300+i; Sentinel i direct 27110+i, announced 27010+i, groups 27210+i / 27310+i; Toxiproxy API 27474.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import redis
import requests

PASSWORD = "target-secret"
PASSWORD_ENV = "TARGET_TEST_PASSWORD"
API_PORT = 27474
MASTER = "mymaster"
PREFIX = "labtest:"
STATE_CMD = ("pid=$(cat {dir}/{{node}}.pid 2>/dev/null); "
             "if [ -n \"$pid\" ] && [ -r /proc/$pid/status ] && ! grep -q '^State:.*[ZX]' /proc/$pid/status; "
             "then if grep -q '^State:.*T' /proc/$pid/status; then echo paused; else echo running; fi; "
             "else echo stopped; fi")


def _names() -> list[tuple[str, int, int]]:
    """(name, direct port, announced port)"""
    return ([(f"redis-{i}", 27100 + i, 27000 + i) for i in (1, 2, 3)]
            + [(f"sentinel-{i}", 27110 + i, 27010 + i) for i in (1, 2, 3)])


def _wait(probe: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except Exception as exc:  # noqa: BLE001 - not yet
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout_s} s: {last}")


def _sentinel_master(port: int) -> dict[str, Any]:
    """SENTINEL MASTER from the Sentinel on ``port``: a plain client parses the reply into the master's
    state (redis-py's ``dict | bool`` is for its Sentinel manager's ``return_responses``)."""
    return cast("dict[str, Any]", redis.Redis(port=port, password=PASSWORD).sentinel_master(MASTER))


class Deployment:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.toxiproxy: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.toxiproxy = subprocess.Popen(["toxiproxy-server", "-host", "127.0.0.1", "-port", str(API_PORT)],
                                          stdout=open(self.root / "toxiproxy.log", "wb"),  # noqa: SIM115 - the child's
                                          stderr=subprocess.STDOUT)
        _wait(lambda: requests.get(f"http://127.0.0.1:{API_PORT}/version", timeout=1).ok, "toxiproxy")
        proxies = []
        for name, direct, port in _names():
            proxies.append({"name": name, "listen": f"127.0.0.1:{port}", "upstream": f"127.0.0.1:{direct}"})
            for g, off in (("a", 200), ("b", 300)):
                proxies.append({"name": f"{name}-{g}", "listen": f"127.0.0.1:{port + off}",
                                "upstream": f"127.0.0.1:{direct}"})
        requests.post(f"http://127.0.0.1:{API_PORT}/populate", json=proxies, timeout=5).raise_for_status()
        for i, (name, direct, port) in enumerate(_names()[:3], start=1):
            conf = [f"port {direct}", "bind 127.0.0.1", f"dir {self.root}", f"pidfile {self.root}/{name}.pid",
                    "daemonize yes", f"logfile {self.root}/{name}.log", f"dbfilename {name}.rdb", "save ''",
                    f"requirepass {PASSWORD}", f"masterauth {PASSWORD}", "replica-announce-ip 127.0.0.1",
                    f"replica-announce-port {port}",
                    # as the lab's own nodes (topologies/config.py): a replica's full sync starts at once,
                    # not after 5 s, so a demoted old primary is back in sync as fast as on the lab's topology
                    "repl-diskless-sync-delay 0"]
            if i > 1:
                conf.append("replicaof 127.0.0.1 27001")
            (self.root / f"{name}.conf").write_text("\n".join(conf) + "\n")
            subprocess.run(["redis-server", str(self.root / f"{name}.conf")], check=True)
        for name, direct, port in _names()[3:]:
            conf = [f"port {direct}", "bind 127.0.0.1", f"dir {self.root}", f"pidfile {self.root}/{name}.pid",
                    "daemonize yes", f"logfile {self.root}/{name}.log", f"requirepass {PASSWORD}",
                    "sentinel announce-ip 127.0.0.1", f"sentinel announce-port {port}",
                    f"sentinel monitor {MASTER} 127.0.0.1 27001 2", f"sentinel auth-pass {MASTER} {PASSWORD}",
                    f"sentinel down-after-milliseconds {MASTER} 1000",
                    f"sentinel failover-timeout {MASTER} 10000", f"sentinel sentinel-pass {PASSWORD}"]
            (self.root / f"{name}.conf").write_text("\n".join(conf) + "\n")
            subprocess.run(["redis-sentinel", str(self.root / f"{name}.conf")], check=True)
        for name, direct, _port in _names():
            _wait(lambda d=direct: redis.Redis(port=d, password=PASSWORD, socket_timeout=1).ping(), name)
        _wait(lambda: redis.Redis(port=27101, password=PASSWORD).info("replication")["connected_slaves"] == 2,
              "replicas")
        _wait(lambda: all(_sentinel_master(27110 + i)["num-other-sentinels"] == 2 for i in (1, 2, 3)), "sentinels")

    def pids(self) -> list[int]:
        out = []
        for name, _d, _p in _names():
            with contextlib.suppress(OSError, ValueError):
                out.append(int((self.root / f"{name}.pid").read_text()))
        return out

    def stop(self) -> None:
        for pid in self.pids():
            for sig in (signal.SIGCONT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        if self.toxiproxy is not None:
            self.toxiproxy.kill()
            self.toxiproxy.wait(10)

    def target_file(self, path: Path, allowed: list[str], destructive: bool = True) -> Path:
        d = str(self.root)
        nodes: list[dict[str, Any]] = []
        sentinels: list[dict[str, Any]] = []
        for name, direct, port in _names():
            entry = {"name": name, "address": f"127.0.0.1:{port}", "direct": f"127.0.0.1:{direct}", "proxy": name,
                     "groups": {"a": {"address": f"127.0.0.1:{port + 200}", "proxy": f"{name}-a"},
                                "b": {"address": f"127.0.0.1:{port + 300}", "proxy": f"{name}-b"}}}
            (sentinels if name.startswith("sentinel") else nodes).append(entry)
        doc = {
            "name": "hand-made", "kind": "sentinel", "password_env": PASSWORD_ENV, "master_name": MASTER,
            "nodes": nodes, "sentinels": sentinels,
            "driver": {"type": "command", "state": STATE_CMD.format(dir=d),
                       "kill": f"kill -KILL $(cat {d}/{{node}}.pid)", "stop": f"kill -TERM $(cat {d}/{{node}}.pid)",
                       "start": f"redis-server {d}/{{node}}.conf", "pause": f"kill -STOP $(cat {d}/{{node}}.pid)",
                       "resume": f"kill -CONT $(cat {d}/{{node}}.pid)"},
            "toxiproxy": {"api": f"http://127.0.0.1:{API_PORT}"},
            "limits": {"allowed_faults": allowed, "key_prefix": PREFIX, "allow_destructive": destructive},
        }
        path.write_text(json.dumps(doc, indent=2))  # JSON is YAML
        return path
