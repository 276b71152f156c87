"""Watch one primary kill from both sides: when the topology announced its new
primary, and when each of several clients got its first write acknowledged.

Every client runs in its own process (no shared GIL or event loop), writes one
key every 10 ms before and after the kill, and all of them face the *same* kill,
so their differences are the clients' alone. Timestamps are ``time.monotonic()``,
one clock for every process on the machine.

The clients (``CLIENTS``):

* ``plain``, the reference: redis-py as a careful user writes it by hand.
  ``Sentinel([...], sentinel_kwargs={password, socket_timeout: 0.2}).master_for("lab",
  socket_timeout=0.2, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))`` or
  ``RedisCluster(startup_nodes=<all six>, same timeouts and retry)``; the caller
  retries every 10 ms.
* ``lab``: ``topo.client()``, the lab's default client (sync, ``clients.DEFAULT_POLICY``);
  the caller retries every 10 ms.
* ``lab-async``: ``topo.client(asyncio=True)``, the same loop on asyncio.
* ``app``: what the experiments' scenarios run (``experiments.model.app_client``):
  asyncio, ``APP_POLICY`` (0.25 s timeouts, no redis-py retry, a pool of
  128 with 32 connections opened up front), every write through the patterns'
  default ``RetryPolicy()`` (3 attempts, full-jitter backoff 10 ms..0.5 s, 2 s
  deadline), open loop: a new write every 5 ms whether or not earlier ones finished.
* ``app-once`` (not in ``DEFAULT_CLIENTS``): the same without the patterns' retry.

The server side (``PromotionWatch``): every Sentinel's pub/sub (``+odown``,
``+promoted-slave``, ``+switch-master``) on its direct port; on the Cluster the
killed primary's replica's ``ROLE``, polled every 5 ms on its direct port.
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import queue
import random
import threading
import time
from collections import Counter
from typing import Any

import redis
import redis.cluster
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from labcommon.errors import LabError, NotReadyError
from labcommon.poll import wait_until
from patterns.common import Counters, RetryPolicy, prepare_client
from topologies import api, health
from topologies.clients import DEFAULT_POLICY
from topologies.outage import client_share
from topologies.spec import HOST, MASTER_NAME
from topologies.topology_kinds.sentinel import replication_ok

KEY_TAG = "{bench}"  # every client's key hashes to this tag's slot (one victim on the Cluster)
WRITE_INTERVAL_S = 0.01  # closed-loop clients: pause after each attempt
OPEN_LOOP_INTERVAL_S = 0.005  # the app client: one new write every 5 ms (200/s)
REFERENCE_TIMEOUT_S = 0.2  # the plain client's socket and connect timeouts
ROLE_POLL_S = 0.005  # Cluster: how often the replica's ROLE is read
READY_TIMEOUT_S = 60.0  # for the client processes to connect and write once
ACK_DEADLINE_S = 30.0  # after the kill, for every client's first acknowledged write
APP_POOL = 128  # the experiments' POOL_SIZE
APP_WARM = 32  # connections app_client opens up front
SENTINEL_EVENTS = ("+odown", "+promoted-slave", "+switch-master")

CLIENTS: dict[str, str] = {
    "plain": "reference: redis-py Sentinel.master_for / RedisCluster, 0.2 s timeouts, Retry(NoBackoff(), 0), "
             "caller retries every 10 ms",
    "lab": "topo.client() (sync), caller retries every 10 ms",
    "lab-async": "topo.client(asyncio=True), caller retries every 10 ms",
    "app": "experiments' app_client path: asyncio, 0.25 s timeouts, no redis-py retry, pool 128 (32 warm), "
           "patterns' RetryPolicy(), open loop 200 writes/s",
    "app-once": "the app path without the patterns' retry (RetryPolicy.none()): what that policy costs",
}
DEFAULT_CLIENTS: tuple[str, ...] = ("plain", "lab", "lab-async", "app")
REFERENCE = "plain"


#: What the experiments' scenarios pass (``experiments.model.app_client``): the lab's defaults
#: (0.25 s timeouts, no redis-py retry) and a pool above any experiment's concurrency.
APP_POLICY = DEFAULT_POLICY.replace(max_connections=APP_POOL)


def app_client(topo: api.Topology) -> Any:
    """The asyncio client the experiments' scenarios build (``experiments.model.app_client``)."""
    return topo.client(asyncio=True, policy=APP_POLICY)


def plain_client(topo: api.Topology) -> Any:
    """The reference client: plain redis-py, 0.2 s timeouts, no redis-py retry."""
    kw: dict[str, Any] = {"password": topo.password, "socket_timeout": REFERENCE_TIMEOUT_S,
                          "socket_connect_timeout": REFERENCE_TIMEOUT_S, "retry": Retry(NoBackoff(), 0)}
    if topo.kind.has_sentinels:
        sentinel = redis.sentinel.Sentinel([(HOST, s.port) for s in topo.spec.sentinels],
                                           sentinel_kwargs={"password": topo.password,
                                                            "socket_timeout": REFERENCE_TIMEOUT_S})
        return sentinel.master_for(MASTER_NAME, **kw)
    if topo.kind.redis_cluster:
        return redis.cluster.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode(HOST, n.port) for n in topo.spec.redis_nodes], **kw)
    raise LabError(f"no failover to measure on topology {topo.name}", "use sentinel or cluster")


# -- the client processes ---------------------------------------------------------------
class _Tally:
    """What one client saw after the kill: the first acknowledged write and the failures before it."""

    def __init__(self, name: str, kill_t: Any) -> None:
        self.name, self.kill_t = name, kill_t
        self.first_ok_t: float | None = None
        self.failed = 0
        self.errors: Counter[str] = Counter()

    def record(self, started: float, ended: float, error: BaseException | None) -> None:
        """An attempt counts when it *started* after the kill command returned."""
        if started < self.kill_t.value:
            return
        if error is None:
            if self.first_ok_t is None or ended < self.first_ok_t:
                self.first_ok_t = ended
        else:
            self.failed += 1
            self.errors[type(error).__name__] += 1

    def report(self) -> dict[str, Any]:
        return {"client": self.name, "first_ok_t": self.first_ok_t, "failed_attempts": self.failed,
                "errors": dict(self.errors)}


def _sync_loop(client: Any, key: str, tally: _Tally, ready: Any, stop: Any) -> None:
    client.set(key, "warm")
    ready.set()
    while not stop.is_set() and tally.first_ok_t is None:
        started = time.monotonic()
        error: BaseException | None = None
        try:
            client.set(key, started)
        except Exception as exc:  # noqa: BLE001 - a bench: any failure is "not acknowledged", counted by type
            error = exc
        tally.record(started, time.monotonic(), error)
        time.sleep(WRITE_INTERVAL_S)


async def _async_loop(client: Any, key: str, tally: _Tally, ready: Any, stop: Any) -> None:
    await prepare_client(client)
    await client.set(key, "warm")
    ready.set()
    while not stop.is_set() and tally.first_ok_t is None:
        started = time.monotonic()
        error: BaseException | None = None
        try:
            await client.set(key, started)
        except Exception as exc:  # noqa: BLE001 - see _sync_loop
            error = exc
        tally.record(started, time.monotonic(), error)
        await asyncio.sleep(WRITE_INTERVAL_S)
    await client.aclose()


async def _app_loop(client: Any, key: str, tally: _Tally, ready: Any, stop: Any, retry: bool = True) -> None:
    await prepare_client(client)
    await asyncio.gather(*(client.ping() for _ in range(APP_WARM)))
    await client.set(key, "warm")
    policy, counters = RetryPolicy() if retry else RetryPolicy.none(), Counters([])
    ready.set()

    async def one() -> None:
        started = time.monotonic()
        error: BaseException | None = None
        try:
            await policy.run(lambda: client.set(key, started), counters)
        except Exception as exc:  # noqa: BLE001 - see _sync_loop
            error = exc
        tally.record(started, time.monotonic(), error)

    tasks: set[asyncio.Task[None]] = set()
    next_t = time.monotonic()
    while not stop.is_set() and tally.first_ok_t is None:
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        next_t += OPEN_LOOP_INTERVAL_S
        await asyncio.sleep(max(0.0, next_t - time.monotonic()))
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()


def client_process(name: str, key: str, kill_t: Any, ready: Any, stop: Any, out: Any) -> None:
    """Entry point of one client process: write until acknowledged after the kill, then report."""
    topo = api.current()
    if topo is None:
        out.put({"client": name, "error": "no topology is up"})
        return
    tally = _Tally(name, kill_t)
    try:
        if name == "plain":
            _sync_loop(plain_client(topo), key, tally, ready, stop)
        elif name == "lab":
            _sync_loop(topo.client(), key, tally, ready, stop)
        elif name == "lab-async":
            asyncio.run(_async_loop(topo.client(asyncio=True), key, tally, ready, stop))
        elif name in ("app", "app-once"):
            asyncio.run(_app_loop(app_client(topo), key, tally, ready, stop, retry=name == "app"))
        else:
            raise LabError(f"unknown client {name!r}; accepted: {', '.join(CLIENTS)}")
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which prints it
        out.put({"client": name, "error": f"{type(exc).__name__}: {exc}"})
        return
    out.put(tally.report())


# -- the server side ------------------------------------------------------------------------
class PromotionWatch:
    """Timestamps of the topology's own failover events (``events``: (t, source, event, detail)).

    Sentinel: every Sentinel's pub/sub on its direct port. Cluster: ``replica``'s ROLE.
    Use as a context manager around the kill.
    """

    def __init__(self, topo: api.Topology, replica: str | None = None) -> None:
        self.topo, self.replica = topo, replica
        self.events: list[tuple[float, str, str, str]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _add(self, source: str, event: str, detail: str) -> None:
        with self._lock:
            self.events.append((time.monotonic(), source, event, detail))

    def __enter__(self) -> PromotionWatch:
        if self.topo.kind.has_sentinels:
            for s in self.topo.spec.sentinels:
                pubsub = health.node_client(s, self.topo.password, direct=True).pubsub()
                pubsub.subscribe(*SENTINEL_EVENTS)
                self._threads.append(threading.Thread(target=self._listen, args=(s.name, pubsub), daemon=True))
        elif self.replica is not None:
            self._threads.append(threading.Thread(target=self._poll_role, daemon=True))
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def _listen(self, source: str, pubsub: Any) -> None:
        try:
            while not self._stop.is_set():
                try:
                    msg = pubsub.get_message(timeout=0.05)
                except (redis.RedisError, OSError) as exc:  # this Sentinel died (fault "machine")
                    self._add(source, "watch-error", f"{type(exc).__name__}: {exc}")
                    return
                if msg and msg["type"] == "message":
                    self._add(source, msg["channel"], msg["data"])
        finally:
            pubsub.close()

    def _poll_role(self) -> None:
        assert self.replica is not None
        node = self.topo.spec.node(self.replica)
        last = None
        with health.node_client(node, self.topo.password, direct=True) as c:
            while not self._stop.is_set():
                try:
                    role = str(c.execute_command("ROLE")[0])
                except redis.RedisError as exc:
                    role = type(exc).__name__
                if role != last:
                    self._add(self.replica, "role", role)
                    last = role
                time.sleep(ROLE_POLL_S)

    def first(self, event: str, detail: str | None = None) -> float | None:
        with self._lock:
            return next((t for t, _s, e, d in sorted(self.events) if e == event and (detail is None or d == detail)),
                        None)

    def promoted_t(self) -> float | None:
        """When the topology announced the new primary: the first ``+switch-master`` on any
        Sentinel, or the Cluster replica first answering ROLE ``master``."""
        if self.topo.kind.has_sentinels:
            return self.first("+switch-master")
        return self.first("role", "master")


# -- one trial --------------------------------------------------------------------------------
def sentinel_settled(topo: api.Topology) -> bool:
    """One primary, replicas linked, and every Sentinel names it, with no failover under way."""
    if not replication_ok(topo.spec, topo.password):
        return False
    primary = topo.primary()
    if primary is None:
        return False
    port = topo.spec.node(primary).port
    for s in topo.spec.sentinels:
        with health.node_client(s, topo.password) as c:
            m = c.sentinel_master(MASTER_NAME)
        if int(m["port"]) != port or m["flags"] != "master" or m.get("num-slaves", 0) < 2:
            return False
    return True


def wait_settled(topo: api.Topology, timeout_s: float = 60.0) -> None:
    if topo.kind.has_sentinels:
        wait_until(lambda: sentinel_settled(topo), timeout_s, "Sentinel settled", topo.backend.all_logs)
    elif topo.kind.redis_cluster:
        wait_until(lambda: health.cluster_ok(topo.spec, topo.password), timeout_s, "cluster settled",
                          topo.backend.all_logs)


def victim_and_replica(topo: api.Topology, key: str) -> tuple[str, str | None]:
    """The primary serving ``key`` (and, on the Cluster, its replica)."""
    by_port = {n.port: n.name for n in topo.spec.redis_nodes}
    if topo.kind.has_sentinels:
        primary = topo.primary()
        if primary is None:
            raise LabError("no single primary to kill", "wait for the topology to settle")
        return primary, None
    with plain_client(topo) as rc:
        primary = rc.get_node_from_key(key)
    for node in topo.spec.redis_nodes:
        with health.node_client(node, topo.password, direct=True) as c:
            info = c.info("replication")
        if info["role"] == "slave" and int(info.get("master_port", 0)) == primary.port:
            return by_port[primary.port], node.name
    return by_port[primary.port], None


#: kill: SIGKILL the primary (connections reset at once); pause: SIGSTOP it (connections hang);
#: machine (Sentinel): SIGKILL the primary and sentinel-1, the Sentinel every client asks first,
#: as when one machine running both dies (the two others still make the quorum of 2).
FAULTS = ("kill", "pause", "machine")


def failover_trial(topo: api.Topology, clients: list[str] | None = None, hold_s: float = 1.0,
                   rng: random.Random | None = None, fault: str = "kill") -> dict[str, Any]:
    """Kill (or pause) the primary serving the bench key while every client writes; return the timeline.

    Before the fault every client is connected and writing, and the fault is delayed by a
    random ``[0, hold_s)`` s so it lands anywhere in Sentinel's 1 s ping cycle (the
    detection time depends on it). A paused primary is resumed before returning.
    Returns fault/promotion times (``kill_t`` is when the kill/pause command returned),
    the Sentinel or Cluster events, and per client its first acknowledged write and
    ``client_share``.
    """
    if fault not in FAULTS:
        raise LabError(f"unknown fault {fault!r}; accepted: {', '.join(FAULTS)}")
    if fault == "machine" and not topo.kind.has_sentinels:
        raise LabError(f"fault 'machine' needs Sentinels; topology {topo.name} has none", "use --fault kill")
    names = clients or list(DEFAULT_CLIENTS)
    wait_settled(topo)
    victim, replica = victim_and_replica(topo, f"{KEY_TAG}:probe")
    ctx = multiprocessing.get_context("spawn")
    kill_t = ctx.Value("d", math.inf)
    stop, out = ctx.Event(), ctx.Queue()
    readies = {n: ctx.Event() for n in names}
    procs = [ctx.Process(target=client_process, args=(n, f"{KEY_TAG}:{n}", kill_t, readies[n], stop, out),
                         daemon=True) for n in names]
    reports: dict[str, dict[str, Any]] = {}
    watch = PromotionWatch(topo, replica)
    paused = False
    try:
        for p in procs:
            p.start()
        _wait_ready(readies, out, reports)
        time.sleep((rng or random).uniform(0, hold_s))  # the kill's phase, not a readiness wait
        with watch:
            if fault == "pause":
                paused = True
                topo.pause(victim)
            elif fault == "machine":
                topo.kill(victim)
                topo.kill(topo.spec.sentinels[0].name)
            else:
                topo.kill(victim)
            killed = time.monotonic()
            kill_t.value = killed
            deadline = killed + ACK_DEADLINE_S
            while len(reports) < len(names) and time.monotonic() < deadline:
                _collect(out, reports, timeout_s=0.1)
            with contextlib.suppress(NotReadyError):  # no promotion by the deadline: the result says so
                wait_until(watch.promoted_t, max(0.0, deadline - time.monotonic()), "a promotion")
    finally:
        stop.set()
        if paused:
            topo.resume(victim)  # also frees a client blocked on the paused node
        wrap_up = time.monotonic() + 10
        while len(reports) < len(names) and any(p.is_alive() for p in procs) and time.monotonic() < wrap_up:
            _collect(out, reports, timeout_s=0.1)
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
    promoted = watch.promoted_t()
    result: dict[str, Any] = {
        "victim": victim, "fault": fault, "kill_t": killed, "promoted_t": promoted,
        "events": [{"t": round(t - killed, 4), "source": s, "event": e, "detail": d}
                   for t, s, e, d in sorted(watch.events)],
        "clients": {},
    }
    for n in names:
        rep = reports.get(n, {"client": n, "error": "no report"})
        ok_t = rep.get("first_ok_t")
        if ok_t is not None and ok_t > deadline:  # answered only once the trial gave up (a resumed node)
            ok_t = rep["first_ok_t"] = None
        if ok_t is None and "error" not in rep:
            rep["error"] = f"no acknowledged write within {ACK_DEADLINE_S:.0f} s of the {fault}"
        result["clients"][n] = {**rep, **client_share(killed, promoted, ok_t)}
    return result


def _collect(out: Any, reports: dict[str, dict[str, Any]], timeout_s: float) -> None:
    try:
        rep = out.get(timeout=timeout_s)
    except queue.Empty:
        return
    reports[rep["client"]] = rep


def _wait_ready(readies: dict[str, Any], out: Any, reports: dict[str, dict[str, Any]]) -> None:
    """Until every client writes (``NotReadyError`` naming the missing ones after
    ``READY_TIMEOUT_S``); a client that reported an error ends the wait at once (``LabError``)."""

    def missing() -> list[str]:
        return [n for n, e in readies.items() if not e.is_set()]

    def all_writing() -> bool:
        _collect(out, reports, timeout_s=0.05)  # blocks up to 0.05 s: the poll's interval
        failed = {n: r["error"] for n, r in reports.items() if "error" in r}
        if failed:
            raise LabError(f"client(s) failed before the kill: {failed}", "is the topology healthy? `redislab status`")
        return not missing()

    wait_until(all_writing, READY_TIMEOUT_S, "failover probe clients writing",
               lambda: f"not writing: {', '.join(missing())}; see `redislab status`", interval_s=0, fatal=(LabError,))

