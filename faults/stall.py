"""A node's one thread kept busy: the machinery of the ``slow_command`` fault.

Three ways, as they happen in production:

* ``lua``: a script spinning for ``duration_ms``. Redis serves nothing while it runs; after
  ``busy-reply-threshold`` (``lua-time-limit``, 5000 ms by default) it answers every other
  command with ``-BUSY`` and accepts ``SCRIPT KILL`` (the script writes nothing, so it can be
  killed). Sentinel itself sends ``SCRIPT KILL`` to a primary that answers its PINGs with BUSY
  once it considers it down.
* ``debug_sleep``: ``DEBUG SLEEP``: the server is blocked, no reply at all, nothing can stop it.
* ``keys``: ``KEYS`` over a keyspace of ``keys`` keys (created first with ``DEBUG POPULATE`` in the
  lab's scratch database, db 9: part of the stall), in a loop for ``duration_ms``: each call blocks the server for
  the time it takes to scan every key. The pattern matches nothing, so the cost is the scan, not
  the reply (a reply of millions of names would stall the injecting process instead).

The command runs on a thread of its own (its own connection, no timeout short of the stall), so
the injection returns at once. ``DEBUG`` needs ``enable-debug-command local`` (the lab's config).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from labcommon.errors import LabError
from labcommon.poll import wait_until
from topologies.api import Topology

SCRATCH_DB = 9  # the lab's own database for the KEYS keyspace (FLUSHDB ASYNC on heal)
KEYS_PATTERN = "*:lab-no-such-key"  # matches none of the populated keys: the whole keyspace is scanned
SPIN = """
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1]) * 1000
repeat
  t = redis.call('TIME')
until tonumber(t[1]) * 1000000 + tonumber(t[2]) >= deadline
return 1
"""
HOWS = ("lua", "debug_sleep", "keys")
REFUSED_WITHIN_S = 0.3  # s: a refused command answers at once; a running stall does not answer at all


def _client(topo: Topology, node: str, timeout_s: float, db: int = 0) -> redis.Redis:
    return topo.node_client(node, direct=True, db=db, socket_timeout=timeout_s, socket_connect_timeout=5.0,
                            decode_responses=True,
                            retry=Retry(NoBackoff(), 0))


@dataclass
class Stall:
    """Keeps ``node`` busy the way ``how`` says, from a thread of its own."""

    topo: Topology
    node: str
    how: str
    duration_s: float
    keys: int = 0
    error: BaseException | None = None
    calls: int = 0  # KEYS calls sent (keys)
    lasted_s: float | None = None  # from the start to the stall's end, s (None while it runs)
    ended_by: str = ""  # what ended it, in words
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _began: float = 0.0  # time.monotonic() at the start

    def start(self) -> None:
        """Start the stall; raises LabError when the node refuses the command at once (DEBUG not
        enabled, a script error): a stall that never began must not pass for one."""
        self._began = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"stall-{self.how}", daemon=True)
        self._thread.start()
        self._thread.join(REFUSED_WITHIN_S)
        if isinstance(self.error, redis.ResponseError):
            raise LabError(f"slow_command: {self.node} refused {self.how}: {self.error}",
                           "DEBUG needs enable-debug-command (the lab's nodes set it); `redislab down` and `up` "
                           "restart them with the lab's config")

    def _run(self) -> None:
        try:
            margin = self.duration_s + 30.0
            if self.how == "lua":
                with _client(self.topo, self.node, margin) as c:
                    c.eval(SPIN, 0, int(self.duration_s * 1000))
                self.ended_by = "the script ran its full length"
            elif self.how == "debug_sleep":
                with _client(self.topo, self.node, margin) as c:
                    c.execute_command("DEBUG", "SLEEP", f"{self.duration_s:.3f}")
                self.ended_by = "DEBUG SLEEP ran its full length (nothing can interrupt it)"
            else:
                deadline = time.monotonic() + self.duration_s
                with _client(self.topo, self.node, margin, SCRATCH_DB) as c:
                    if int(c.dbsize()) < self.keys:  # part of the stall: DEBUG POPULATE blocks the node too
                        c.execute_command("DEBUG", "POPULATE", self.keys, "lab:slow")
                    while not self._stop.is_set() and time.monotonic() < deadline:
                        c.execute_command("KEYS", KEYS_PATTERN)
                        self.calls += 1
                self.ended_by = ("the heal stopped the KEYS loop" if self._stop.is_set()
                                 else "the KEYS loop ran its length")
        except redis.ResponseError as exc:
            if "killed" in str(exc).lower():  # SCRIPT KILL: the heal's, or someone's before it (Sentinel's)
                self.ended_by = ("the heal's SCRIPT KILL" if self._stop.is_set() else
                                 "a SCRIPT KILL sent before the heal (not the lab's: Sentinel's)")
            else:
                self.error = exc
        except BaseException as exc:  # noqa: BLE001 - reported by the heal
            self.error = exc
        finally:
            self.lasted_s = time.monotonic() - self._began

    def outcome(self) -> dict[str, Any]:
        """How long the stall lasted (s), what ended it, KEYS calls made, an error: for the heal event."""
        out: dict[str, Any] = {"how": self.how, "lasted_s": None if self.lasted_s is None else round(self.lasted_s, 3),
                               "ended_by": self.ended_by or ("still running" if self.lasted_s is None else "")}
        if self.how == "keys":
            out["calls"] = self.calls
        if self.error is not None:
            out["error"] = f"{type(self.error).__name__}: {self.error}"[:300]
        return out

    def stop(self, timeout_s: float) -> None:
        """End the stall: stop the KEYS loop, kill the script, wait for DEBUG SLEEP to end."""
        self._stop.set()
        end(self.topo, self.node, self.how, timeout_s)
        if self._thread is not None:
            self._thread.join(timeout_s)


def end(topo: Topology, node: str, how: str, timeout_s: float) -> str:
    """End a stall from any process: SCRIPT KILL (lua), wait for the node to answer (all), drop the
    KEYS keyspace (keys). Returns what it did."""
    done = ""
    if how == "lua":
        done = _script_kill(topo, node, timeout_s)

    def answers() -> bool:
        with _client(topo, node, 1.0) as c:
            return bool(c.ping())
    wait_until(answers, timeout_s, f"{node} to answer again after its stall", interval_s=0.1)
    if how == "keys":
        with _client(topo, node, 30.0, SCRATCH_DB) as c:
            c.execute_command("FLUSHDB", "ASYNC")
        done = (done + "; " if done else "") + f"dropped the KEYS keyspace (db {SCRATCH_DB})"
    return done


def _script_kill(topo: Topology, node: str, timeout_s: float) -> str:
    """SCRIPT KILL until no script runs, every 0.1 s for ``timeout_s`` seconds (then the last
    error is raised). Before the busy threshold the server reads nothing, so the command waits
    in the socket (timeout: what is left of ``timeout_s``, at least 1 s)."""
    deadline = time.monotonic() + timeout_s

    def kill() -> str:
        try:
            with _client(topo, node, max(1.0, deadline - time.monotonic())) as c:
                c.execute_command("SCRIPT", "KILL")
        except redis.ResponseError as exc:
            if "NOTBUSY" in str(exc).upper():
                return ""
            raise
        return "killed the script (SCRIPT KILL)"

    retrying = Retrying(retry=retry_if_exception_type((redis.ResponseError, redis.ConnectionError, redis.TimeoutError)),
                        stop=stop_after_delay(timeout_s), wait=wait_fixed(0.1), reraise=True)
    return retrying(kill)


def busy_threshold(topo: Topology, node: str) -> str:
    """The node's ``busy-reply-threshold`` (``lua-time-limit``) in ms, as CONFIG GET returns it."""
    with _client(topo, node, 5.0) as c:
        return str(c.config_get("lua-time-limit")["lua-time-limit"])


def set_busy_threshold(topo: Topology, node: str, ms: Any) -> None:
    with _client(topo, node, 5.0) as c:
        c.config_set("lua-time-limit", str(ms))
