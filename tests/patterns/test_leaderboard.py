"""Leaderboard against real Redis: ordering with ties, ranks, pages, windows, replica reads."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from patterns.common import LuaScript
from patterns.leaderboard import Entry, Leaderboard, Window
from tests.patterns.helpers import closed_port, closed_port_client, eventually, open_client

pytestmark = pytest.mark.integration

SCORES = {"dave": 50, "carol": 70, "bob": 70, "alice": 70, "erin": 50, "frank": 10, "gina": 90}
# expected order: score desc, ties by member asc; rank = 1 + number strictly better
EXPECTED = [
    Entry("gina", 90, 1, 1),
    Entry("alice", 70, 2, 2),
    Entry("bob", 70, 3, 2),
    Entry("carol", 70, 4, 2),
    Entry("dave", 50, 5, 5),
    Entry("erin", 50, 6, 5),
    Entry("frank", 10, 7, 7),
]


def test_order_ranks_and_pages_with_ties(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            board = Leaderboard(client, f"{prefix}:game")
            for member, score in SCORES.items():
                await board.add(member, score)
            assert await board.top(100) == EXPECTED
            assert await board.top(3) == EXPECTED[:3]
            assert await board.page(1, 3) == EXPECTED[0:3]
            assert await board.page(2, 3) == EXPECTED[3:6]  # page starts mid-tie? no: check next
            assert await board.page(3, 3) == EXPECTED[6:]
            assert await board.page(4, 3) == []
            # a page that starts inside a run of ties still reports the shared rank
            assert await board.page(2, 2) == EXPECTED[2:4]
            for e in EXPECTED:
                assert await board.rank(e.member) == e
                assert await board.score(e.member) == e.score
            assert await board.rank("nobody") is None and await board.score("nobody") is None
            assert await board.around("carol", 1) == EXPECTED[2:5]
            assert await board.around("gina", 2) == EXPECTED[0:3]
            assert await board.around("nobody", 2) == []
        finally:
            await client.aclose()

    asyncio.run(main())


def test_incr_is_atomic_under_concurrency(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            board = Leaderboard(client, f"{prefix}:game")
            await asyncio.gather(*(board.incr(f"p{i % 5}", 1.5) for i in range(500)))
            top = await board.top(5)
            assert [e.score for e in top] == [150.0] * 5
            assert [e.member for e in top] == [f"p{i}" for i in range(5)]
            assert {e.rank for e in top} == {1}
            assert await board.incr("p0", -200) == -50.0
            assert (await board.rank("p0")).position == 5  # type: ignore[union-attr]  # p0 is on the board
        finally:
            await client.aclose()

    asyncio.run(main())


def _script_loads(topo: Any) -> int:
    """SCRIPT LOAD calls served by every data node so far (INFO commandstats)."""
    total = 0
    for node in topo.spec.redis_nodes:
        with topo.node_client(node.name, direct=True) as c:
            total += int(c.info("commandstats").get("cmdstat_script|load", {}).get("calls", 0))
    return total


def test_callers_that_meet_a_missing_script_together_load_it_once(app_client_factory: Any, prefix: str) -> None:
    """300 first calls at once of a script no server has: one SCRIPT LOAD for all of them (redis-py's
    own script loads it in every caller that got NOSCRIPT: 1,500 loads for 500 leaderboard calls on the
    cluster, which ran past the patterns' 2-s deadline with both cores busy)."""
    topo = app_client_factory.topo

    async def main() -> tuple[int, int]:
        client = await open_client(app_client_factory)
        try:
            one_load = _script_loads(topo)
            await client.script_load(f"return 0 -- {prefix} alone")  # what one load costs here (cluster: per primary)
            one_load = _script_loads(topo) - one_load
            script = LuaScript(client, f"return redis.call('INCR', KEYS[1]) -- {prefix}")  # a sha no server knows
            key = f"{prefix}:n"
            await asyncio.gather(*(client.exists(key) for _ in range(300)))  # 300 open connections to the key's node:
            before = _script_loads(topo)  # the calls below are all sent before the first NOSCRIPT comes back
            replies = await asyncio.gather(*(script(keys=[key]) for _ in range(300)))
            assert sorted(replies) == list(range(1, 301))  # every caller ran it, once
            return one_load, _script_loads(topo) - before
        finally:
            await client.aclose()

    one_load, loads = asyncio.run(main())
    assert one_load >= 1 and loads == one_load, (one_load, loads)


def test_time_windows_use_separate_expiring_keys(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            now = time.time()  # real time: an EXPIREAT in the past would delete the key at once
            board = Leaderboard(client, f"{prefix}:game", window=Window.HOURLY, retention_s=3600, clock=lambda: now)
            hour = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%d%H")
            assert board.key() == f"lb:{{{prefix}:game}}:h:{hour}"
            assert board.key(1_700_000_000) == f"lb:{{{prefix}:game}}:h:2023111422"
            await board.incr("a", 5)
            await board.incr("a", 1, at_s=now - 3600)  # previous hour
            await board.incr("b", 4, at_s=now - 3600)
            assert [e.member for e in await board.top(10)] == ["a"]
            expired = Leaderboard(client, f"{prefix}:old", window=Window.DAILY, retention_s=60)
            await expired.incr("x", 1, at_s=now - 3 * 86_400)  # window long past: gone at once
            assert await expired.top(10, at_s=now - 3 * 86_400) == []
            assert [(e.member, e.score) for e in await board.top(10, at_s=now - 3600)] == [("b", 4.0), ("a", 1.0)]
            summed = await board.top_over([now, now - 3600], 10)
            assert [(e.member, e.score, e.rank) for e in summed] == [("a", 6.0, 1), ("b", 4.0, 2)]
            _, end = board.window_bounds()
            assert await client.expiretime(board.key()) == end + 3600
        finally:
            await client.aclose()

    asyncio.run(main())


def test_replica_read_falls_back_to_primary_when_replica_is_down(app_client_factory: Any, prefix: str) -> None:
    async def main() -> None:
        client = await open_client(app_client_factory)
        replica = closed_port_client()
        try:
            board = Leaderboard(client, f"{prefix}:game", replica=replica)
            await board.add("a", 1)
            result = await board.replica_read("top", 5)
            assert result.source == "primary" and not result.stale
            assert [e.member for e in result.value] == ["a"]
            assert board.counters["replica_fallbacks"] == 1
            assert board.counters.errors["ConnectionError"] == 1
            with pytest.raises(ValueError, match="known"):
                await board.replica_read("delete_everything")
        finally:
            await replica.aclose()
            await client.aclose()

    asyncio.run(main())


REPLICA_PORT = 6420  # this test's own replica process (ports 6400-6499 belong to the pattern tests)


def test_replica_reads_report_staleness(app_client_factory: Any, prefix: str, tmp_path: Path) -> None:
    """A real replica of the primary: fresh reads are flagged fresh; once its
    link is cut, it keeps serving the old value and the read is flagged stale."""
    if app_client_factory.topology != "single":
        pytest.skip("replica reads with lag probing are for plain/Sentinel clients")

    async def main() -> None:
        client = await open_client(app_client_factory)
        kw = client.connection_pool.connection_kwargs
        password = kw.get("password")
        subprocess.run(  # noqa: ASYNC221 - redis-server daemonizes at once
            ["redis-server", "--port", str(REPLICA_PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "yes", "--dir", str(tmp_path), "--logfile", str(tmp_path / "replica.log"),
             "--replicaof", kw["host"], str(kw["port"]), *(["--masterauth", password] if password else [])],
            check=True,
        )
        replica = redis.asyncio.Redis(port=REPLICA_PORT, decode_responses=True, retry=Retry(NoBackoff(), 0))
        try:
            board = Leaderboard(client, f"{prefix}:game", replica=replica, lag_probe_interval_s=0)
            await board.add("a", 1)

            async def caught_up() -> bool:
                try:
                    r = await board.replica_read("score", "a")
                except Exception:  # noqa: BLE001 - replica still loading
                    return False
                return r.source == "replica" and r.value == 1.0 and not r.stale

            await eventually(caught_up, 20, "replica synced and caught up")
            assert (await board.replica_read("score", "a")).lag_bytes == 0

            await replica.replicaof("127.0.0.1", str(closed_port()))  # cut the link; data stays
            await board.add("a", 2)
            stale = await board.replica_read("score", "a")
            assert stale.source == "replica" and stale.value == 1.0 and stale.stale
            assert await board.score("a") == 2.0  # the primary has moved on
        finally:
            try:
                await replica.shutdown(nosave=True, now=True, force=True)
            except redis.ConnectionError:
                pass  # shutdown drops the connection: expected
            await replica.aclose()
            await client.aclose()

    asyncio.run(main())


def _consistent(entries: list[Entry], first_is_top: bool) -> bool:
    """One answer's ranks agree with its own positions and scores (competition ranks)."""
    for i, e in enumerate(entries):
        if e.rank < 1 or e.rank > e.position:
            return False
        if i > 0:
            prev = entries[i - 1]
            if e.position != prev.position + 1 or e.score > prev.score:
                return False
            if e.rank != (prev.rank if e.score == prev.score else e.position):
                return False
    return not (first_is_top and entries and entries[0].rank != 1)


def test_reads_are_consistent_under_concurrent_writes(app_client_factory: Any, prefix: str) -> None:
    """Writers keep overtaking each other while readers page and rank: every answer
    is one snapshot (the range and the rank of its first entry come from one script)."""

    async def main() -> None:
        client = await open_client(app_client_factory)
        try:
            board = Leaderboard(client, f"{prefix}:race")
            members = [f"m{i}" for i in range(6)]
            for m in members:
                await board.add(m, 0)
            stop = asyncio.Event()

            async def writer(i: int) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    await board.incr(members[(i + n) % len(members)], 1 + (n % 3))

            bad: list[Any] = []
            reads = 0

            async def reader(i: int) -> None:
                nonlocal reads
                while not stop.is_set():
                    top = await board.top(3)
                    page = await board.page(2, 2)
                    entry = await board.rank(members[i % len(members)])
                    around = await board.around(members[(i + 1) % len(members)], 1)
                    reads += 4
                    if not _consistent(top, True):
                        bad.append(("top", top))
                    if not _consistent(page, False):
                        bad.append(("page", page))
                    if entry is not None and not 1 <= entry.rank <= entry.position:
                        bad.append(("rank", entry))
                    if not _consistent(around, False):
                        bad.append(("around", around))

            tasks = [asyncio.create_task(writer(i)) for i in range(8)]
            tasks += [asyncio.create_task(reader(i)) for i in range(8)]
            await asyncio.sleep(3.0)
            stop.set()
            await asyncio.gather(*tasks)
            assert reads > 200  # the readers really raced the writers
            assert bad == [], bad[:3]
        finally:
            await client.aclose()

    asyncio.run(main())


def test_replica_read_probes_the_link_for_every_read(app_client_factory: Any, prefix: str, tmp_path: Path) -> None:
    """With the default probe interval (the primary's offset is cached), a read right
    after the replica's link broke must still be flagged stale: the replica's own
    state is probed before every read."""
    if app_client_factory.topology != "single":
        pytest.skip("replica reads with lag probing are for plain/Sentinel clients")

    async def main() -> None:
        client = await open_client(app_client_factory)
        replica = await _start_replica(client, tmp_path, REPLICA_PORT + 1)
        try:
            board = Leaderboard(client, f"{prefix}:game", replica=replica, lag_probe_interval_s=60)
            await board.add("a", 1)

            async def caught_up() -> bool:
                try:
                    return (await replica.zscore(board.key(), "a")) is not None
                except redis.RedisError:
                    return False  # still loading

            await eventually(caught_up, 20, "replica synced")
            first = await board.replica_read("score", "a")
            assert first.source == "replica" and first.value == 1.0 and not first.stale
            ranked = await board.replica_read("top", 5)  # the read-only scripts run on the replica too
            assert ranked.source == "replica" and ranked.value == [Entry("a", 1.0, 1, 1)]
            await replica.replicaof("127.0.0.1", str(closed_port()))  # cut the link; data stays
            await board.add("a", 2)
            second = await board.replica_read("score", "a")  # within the probe interval
            assert second.value == 1.0 and second.stale
        finally:
            await _stop_replica(replica)
            await client.aclose()

    asyncio.run(main())


async def _start_replica(client: Any, tmp_path: Path, port: int) -> Any:
    kw = client.connection_pool.connection_kwargs
    password = kw.get("password")
    subprocess.run(  # noqa: ASYNC221 - redis-server daemonizes at once
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--daemonize", "yes", "--dir", str(tmp_path), "--logfile", str(tmp_path / f"replica-{port}.log"),
         "--replicaof", kw["host"], str(kw["port"]), *(["--masterauth", password] if password else [])],
        check=True,
    )
    return redis.asyncio.Redis(port=port, decode_responses=True, retry=Retry(NoBackoff(), 0))


async def _stop_replica(replica: Any) -> None:
    try:
        await replica.shutdown(nosave=True, now=True, force=True)
    except redis.ConnectionError:
        pass  # shutdown drops the connection: expected
    await replica.aclose()
