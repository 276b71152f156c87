"""The local backend: redis-server, redis-sentinel and toxiproxy-server as processes on 127.0.0.1.

Everything lives in a run directory the lab owns (``<lab home>/run/<topology>``):
configs, data, logs. Processes are started in their own session so they outlive
the command that started them, and are identified by pid + start time.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import psutil

from labcommon.errors import LabError
from labcommon.poll import wait_until
from topologies import binaries, config, health
from topologies.home import lab_home, write_private
from topologies.processes import OwnedProcess, tail
from topologies.spec import HOST, TOXIPROXY_API_PORT, NodeSpec, TopologySpec

TOXIPROXY = "toxiproxy"


class LocalBackend:
    """Runs a topology as local processes. ``state`` is the JSON-able record of what it owns."""

    name = "local"

    def __init__(self, spec: TopologySpec, password: str, state: dict[str, Any] | None = None) -> None:
        self.spec = spec
        self.password = password
        self.run_dir = lab_home() / "run" / spec.name
        self.procs: dict[str, OwnedProcess] = {
            k: OwnedProcess.from_json(v) for k, v in (state or {}).get("procs", {}).items()
        }

    # -- record -----------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"procs": {k: p.to_json() for k, p in self.procs.items()}, "run_dir": str(self.run_dir)}

    def owns_anything(self) -> bool:
        return any(p.alive() for p in self.procs.values())

    # -- lifecycle --------------------------------------------------------------
    def start_all(self) -> None:
        """Start Toxiproxy and every node (returns without waiting for health)."""
        tox, server, cli = binaries.find("toxiproxy-server"), binaries.find("redis-server"), binaries.find("redis-cli")
        del cli  # checked now so a missing redis-cli fails before anything starts
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)
        self._spawn_toxiproxy(tox)
        for node in self.spec.nodes:
            self._prepare(node)
            self.procs[node.name] = OwnedProcess.spawn(self._argv(node, server), self._log(node),
                                                       cwd=self._dir(node))

    def _spawn_toxiproxy(self, binary: str) -> None:
        cfg = self.run_dir / "toxiproxy.json"
        cfg.write_text(config.toxiproxy_config(self.spec, listen_host=HOST))
        env = dict(os.environ, LOG_LEVEL="warn")
        self.procs[TOXIPROXY] = OwnedProcess.spawn(
            [binary, "-host", HOST, "-port", str(TOXIPROXY_API_PORT), "-config", str(cfg)],
            self.run_dir / "toxiproxy.log", env=env, cwd=self.run_dir)

    def available(self) -> bool:
        """Local processes need no daemon."""
        return True

    def kill_proxy(self) -> None:
        """SIGKILL the lab's own Toxiproxy (also when stopped or hung)."""
        proc = self.procs.get(TOXIPROXY)
        if proc is not None and proc.alive():
            _sigkill(proc)

    def start_proxy(self) -> str:
        """Start Toxiproxy again after it died (every proxy enabled, no toxics). Returns what it did."""
        if self.node_state(TOXIPROXY) != "stopped":
            return ""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._spawn_toxiproxy(binaries.find("toxiproxy-server"))
        wait_until(health.toxiproxy_ready, 10, "Toxiproxy API", lambda: self.logs(TOXIPROXY))
        return "restarted Toxiproxy (it had died; its toxics died with it)"

    def form_cluster(self) -> None:
        """`redis-cli --cluster create` over the proxied addresses (called by ``health.wait_healthy`` when
        the kind's nodes are not formed yet: ``TopologyKind.formed``)."""
        cli = binaries.find("redis-cli")
        env = dict(os.environ, REDISCLI_AUTH=self.password)
        result = subprocess.run([cli, *config.cluster_create_args(self.spec)], env=env,
                                capture_output=True, text=True, timeout=60)
        (self.run_dir / "cluster-create.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise LabError("redis-cli --cluster create failed", "see the log lines below",
                           (result.stdout + result.stderr)[-2000:])

    def stop_all(self) -> None:
        """Terminate every owned process (nodes first, Toxiproxy last) and remove the run dir."""
        for name in [n for n in self.procs if n != TOXIPROXY] + [TOXIPROXY]:
            if name in self.procs:
                self.procs[name].terminate(timeout_s=3.0)
        self.procs.clear()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def netns_pid(self) -> int | None:
        """Local processes share the host's network namespace."""
        return None

    # -- node control -----------------------------------------------------------
    def node_state(self, name: str) -> str:
        proc = self.procs.get(name)
        return proc.state() if proc else "stopped"

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown, no final save."""
        _sigkill(self._proc(name))

    def stop(self, name: str) -> None:
        """Graceful stop (SIGTERM: Redis persists as configured, then exits)."""
        self._proc(name).terminate(timeout_s=10.0)

    def start(self, name: str) -> None:
        node = self.spec.node(name)
        if self.node_state(name) != "stopped":
            raise LabError(f"{name} is already running", f"stop or kill it first: redislab node stop {name}")
        # Same arguments and config file as at first start, the file as Sentinel's
        # CONFIG REWRITE left it (config.data_node_conf): a node restarts in the role
        # Sentinel last gave it; an old primary Sentinel never reached comes up as a
        # primary and Sentinel demotes it.
        self.procs[name] = OwnedProcess.spawn(self._argv(node, binaries.find("redis-server")),
                                              self._log(node), cwd=self._dir(node))

    def pause(self, name: str) -> None:
        """SIGSTOP; returns once the kernel reports the process stopped (signals are asynchronous)."""
        self._proc(name).signal(signal.SIGSTOP)
        wait_until(lambda: self.node_state(name) == "paused", 5, f"{name} stopped", interval_s=0.005)

    def resume(self, name: str) -> None:
        self._proc(name).signal(signal.SIGCONT)
        wait_until(lambda: self.node_state(name) == "running", 5, f"{name} resumed", interval_s=0.005)

    def logs(self, name: str, lines: int = 20) -> str:
        if name == TOXIPROXY:
            return tail(self.run_dir / "toxiproxy.log", lines)
        return tail(self._log(self.spec.node(name)), lines)

    def all_logs(self, lines: int = 8) -> str:
        parts = []
        for name in [TOXIPROXY, *[n.name for n in self.spec.nodes]]:
            text = self.logs(name, lines)
            if text:
                parts.append(f"--- {name} ({self.node_state(name)}) ---\n{text}")
        return "\n".join(parts)

    # -- helpers ----------------------------------------------------------------
    def _proc(self, name: str) -> OwnedProcess:
        self.spec.node(name)  # unknown names raise with the list of known ones
        proc = self.procs.get(name)
        if proc is None or not proc.alive():
            raise LabError(f"{name} is not running", f"start it: redislab node start {name}")
        return proc

    def _dir(self, node: NodeSpec) -> Path:
        return self.run_dir / node.name

    def _log(self, node: NodeSpec) -> Path:
        return self._dir(node) / f"{node.name}.log"

    def _prepare(self, node: NodeSpec) -> None:
        """The node's directory and the files that carry its password (0600, never arguments)."""
        d = self._dir(node)
        d.mkdir(parents=True, exist_ok=True)
        if node.kind == "sentinel":
            conf = config.sentinel_conf(node, self.spec, self.password, bind=HOST, data_dir=str(d),
                                        logfile=str(self._log(node)))
            write_private(d / "sentinel.conf", conf)
        else:
            write_private(d / "auth.conf", config.data_node_conf(node, self.spec, self.password))

    def _argv(self, node: NodeSpec, server: str) -> list[str]:
        if node.kind == "sentinel":
            return [server, str(self._dir(node) / "sentinel.conf"), "--sentinel"]
        args = config.redis_args(node, self.spec, bind=HOST, data_dir=str(self._dir(node)),
                                 logfile=str(self._log(node)), replicaof_arg=False)
        return [server, str(self._dir(node) / "auth.conf"), *args]


def strays() -> list[tuple[OwnedProcess, str]]:
    """Processes whose working directory or command line lies in the lab's run directory
    (leftovers of a lab whose record was lost), with their command lines."""
    root = str(lab_home() / "run")
    found = []
    for info in psutil.process_iter(["cwd", "cmdline"], ad_value=None):
        cwd, argv = info.info["cwd"], info.info["cmdline"]
        if info.pid == os.getpid() or cwd is None or argv is None:
            continue  # gone, or not ours to read
        cmd = " ".join(argv).strip()
        if cwd.startswith(root) or root in cmd:
            proc = OwnedProcess.of(info.pid)
            if proc is not None:
                found.append((proc, cmd))
    return found


def kill_strays() -> list[str]:
    """Kill every stray (see ``strays``). Returns what was killed."""
    killed = []
    for proc, cmd in strays():
        if proc.alive():
            proc.signal(signal.SIGCONT)
            proc.signal(signal.SIGKILL)
            killed.append(f"process {proc.pid} ({cmd[:60]})")
    return killed


def remove_run_dirs() -> list[str]:
    """Remove the run directories left by topologies whose record was lost (after ``kill_strays``)."""
    root = lab_home() / "run"
    gone = [f"run directory {d}" for d in sorted(root.iterdir())] if root.exists() else []
    shutil.rmtree(root, ignore_errors=True)
    return gone


def _sigkill(proc: OwnedProcess) -> None:
    """SIGKILL an owned process, stopped (SIGSTOP) or not, and wait until it is gone (5 s)."""
    proc.signal(signal.SIGCONT)
    proc.signal(signal.SIGKILL)
    proc.wait_gone(5.0)
