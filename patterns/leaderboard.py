"""Leaderboard on a sorted set, with time windows and optional replica reads.

Ordering: higher score first; equal scores ordered by member, ascending
(byte-wise). Redis orders equal scores lexicographically *ascending* and
ZREVRANGE reverses that too (ties come out Z..A), so we store the NEGATED
score and read with plain ZRANGE: best first, ties A..Z. Anyone reading the
key directly must negate scores back (``score = -stored``).

Two positions per entry: ``position`` (1-based, unique, the listing order) and
``rank`` (1-based competition rank, "1224": ties share the best position).

Keys: ``lb:{name}`` (all time) or ``lb:{name}:h:YYYYMMDDHH`` / ``:d:YYYYMMDD``
(UTC windows, EXPIREAT window end + retention). All windows of one board
share the hash tag, so ``top_over`` can ZUNION them on a cluster.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from patterns.common import REDIS_FAILURES, Counters, RetryPolicy, as_str, tagged

T = TypeVar("T")

COUNTERS = ("writes", "replica_reads", "replica_fallbacks")

# KEYS[1] board; ARGV[1] negated delta, ARGV[2] member, ARGV[3] expireat_s (0 = none)
_INCR = """
local s = redis.call('ZINCRBY', KEYS[1], ARGV[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIREAT', KEYS[1], ARGV[3]) end
return s
"""
# KEYS[1] board; ARGV[1] negated score, ARGV[2] member, ARGV[3] expireat_s (0 = none)
_ADD = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIREAT', KEYS[1], ARGV[3]) end
return 1
"""


class Window(enum.Enum):
    ALL_TIME = "all"
    HOURLY = "h"
    DAILY = "d"


class LeaderboardUnavailable(Exception):
    """The primary failed after retries; ``__cause__`` is the Redis error."""


@dataclass(frozen=True)
class Entry:
    member: str
    score: float
    position: int  # 1-based order in the board, unique
    rank: int  # 1-based competition rank: ties share the best position


@dataclass(frozen=True)
class ReadResult(Generic[T]):
    """A read that may come from a replica. ``stale`` is True when the replica's
    link is down or it had not applied everything the primary had at probe
    time (``lag_bytes`` > 0); ``lag_bytes`` is None when unknown."""

    value: T
    source: str  # "replica" | "primary"
    stale: bool
    lag_bytes: int | None


def _neg(score: float) -> float:
    return -float(score) if score else 0.0


class Leaderboard:
    """One board. ``replica`` (optional) is a client to a replica of the same
    primary (plain or ``Sentinel.slave_for``); on a cluster use the client's
    own replica routing instead (lag is then not visible)."""

    READS = ("top", "page", "rank", "score", "around")

    def __init__(
        self,
        client: Any,
        name: str,
        window: Window = Window.ALL_TIME,
        retention_s: int = 86_400,
        replica: Any | None = None,
        retry: RetryPolicy = RetryPolicy(),
        lag_probe_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.replica = replica
        self.name = name
        self.window = window
        self.retention_s = retention_s
        self.retry = retry
        self.clock = clock
        self.lag_probe_interval_s = lag_probe_interval_s
        self.counters = Counters(COUNTERS)
        self._incr = client.register_script(_INCR)
        self._add = client.register_script(_ADD)
        self._lag: tuple[float, bool, int | None] | None = None  # (probed_at_monotonic, link_up, lag_bytes)

    # -- keys ----------------------------------------------------------------

    def window_bounds(self, at_s: float | None = None) -> tuple[int, int]:
        """(start_s, end_s) of the window containing ``at_s`` (UTC); (0, 0) for all-time."""
        if self.window is Window.ALL_TIME:
            return 0, 0
        span = 3600 if self.window is Window.HOURLY else 86_400
        t = int(self.clock() if at_s is None else at_s)
        start = t - t % span
        return start, start + span

    def key(self, at_s: float | None = None) -> str:
        base = f"lb:{tagged(self.name)}"
        if self.window is Window.ALL_TIME:
            return base
        start, _ = self.window_bounds(at_s)
        fmt = "%Y%m%d%H" if self.window is Window.HOURLY else "%Y%m%d"
        stamp = dt.datetime.fromtimestamp(start, dt.timezone.utc).strftime(fmt)
        return f"{base}:{self.window.value}:{stamp}"

    def _expire_at(self, at_s: float | None) -> int:
        _, end = self.window_bounds(at_s)
        return end + self.retention_s if end else 0

    # -- writes --------------------------------------------------------------

    async def add(self, member: str, score: float, at_s: float | None = None) -> None:
        """Set ``member``'s score (ZADD)."""
        await self._primary(lambda: self._add(keys=[self.key(at_s)], args=[_neg(score), member, self._expire_at(at_s)]))
        self.counters.inc("writes")

    async def incr(self, member: str, delta: float, at_s: float | None = None) -> float:
        """Add ``delta`` to ``member``'s score (ZINCRBY); returns the new score.
        Not idempotent: a retry after a timeout may apply ``delta`` twice."""
        stored = await self._primary(
            lambda: self._incr(keys=[self.key(at_s)], args=[_neg(delta), member, self._expire_at(at_s)])
        )
        self.counters.inc("writes")
        return -float(stored) + 0.0

    # -- reads (primary) -----------------------------------------------------

    async def top(self, n: int, at_s: float | None = None) -> list[Entry]:
        return await self._primary(lambda: self._top(self.client, n, at_s))

    async def page(self, page_no: int, size: int, at_s: float | None = None) -> list[Entry]:
        """1-based page of ``size`` entries."""
        return await self._primary(lambda: self._page(self.client, page_no, size, at_s))

    async def rank(self, member: str, at_s: float | None = None) -> Entry | None:
        return await self._primary(lambda: self._rank(self.client, member, at_s))

    async def score(self, member: str, at_s: float | None = None) -> float | None:
        return await self._primary(lambda: self._score(self.client, member, at_s))

    async def around(self, member: str, radius: int, at_s: float | None = None) -> list[Entry]:
        """``member`` with up to ``radius`` entries above and below; [] if absent."""
        return await self._primary(lambda: self._around(self.client, member, radius, at_s))

    async def top_over(self, windows_at_s: Sequence[float], n: int) -> list[Entry]:
        """Top ``n`` summed over several windows (ZUNION, same slot via the hash tag)."""
        keys = [self.key(t) for t in windows_at_s]

        async def op() -> list[Entry]:
            rows = await self.client.zunion(keys, withscores=True)
            return _entries(rows[:n], 1, 1)

        return await self._primary(op)

    # -- reads (replica) -----------------------------------------------------

    async def replica_read(self, what: str, *args: Any) -> ReadResult[Any]:
        """Run read ``what`` (one of ``READS``) on the replica; on replica failure
        fall back to the primary (counted). E.g. ``replica_read("top", 10)``."""
        if what not in self.READS:
            raise ValueError(f"unknown read {what!r}; known: {self.READS}")
        fn = getattr(self, f"_{what}")
        if self.replica is not None:
            try:
                value = await fn(self.replica, *args)
                link_up, lag = await self._replica_lag()
                self.counters.inc("replica_reads")
                return ReadResult(value, "replica", (not link_up) or lag is None or lag > 0, lag)
            except REDIS_FAILURES as exc:
                self.counters.error(exc)
                self.counters.inc("replica_fallbacks")
        value = await self._primary(lambda: fn(self.client, *args))
        return ReadResult(value, "primary", False, 0)

    async def _replica_lag(self) -> tuple[bool, int | None]:
        """(link_up, primary_offset - replica_offset), probed at most every
        ``lag_probe_interval_s``. The replica is probed first, so the estimate
        errs on the stale side."""
        now = time.monotonic()
        if self._lag is not None and now - self._lag[0] < self.lag_probe_interval_s:
            return self._lag[1], self._lag[2]
        rinfo = await self.replica.info("replication")
        link_up = rinfo.get("master_link_status") == "up"
        lag: int | None = None
        try:
            pinfo = await self.client.info("replication")
            lag = max(0, int(pinfo["master_repl_offset"]) - int(rinfo["slave_repl_offset"]))
        except (*REDIS_FAILURES, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, REDIS_FAILURES):
                self.counters.error(exc)
        self._lag = (now, link_up, lag)
        return link_up, lag

    # -- implementation, parameterised by client --------------------------------

    async def _top(self, client: Any, n: int, at_s: float | None = None) -> list[Entry]:
        return await self._range(client, 0, n - 1, at_s)

    async def _page(self, client: Any, page_no: int, size: int, at_s: float | None = None) -> list[Entry]:
        if page_no < 1 or size < 1:
            raise ValueError(f"page_no and size must be >= 1, got {page_no}, {size}")
        start = (page_no - 1) * size
        return await self._range(client, start, start + size - 1, at_s)

    async def _score(self, client: Any, member: str, at_s: float | None = None) -> float | None:
        s = await client.zscore(self.key(at_s), member)
        return None if s is None else -float(s) + 0.0

    async def _rank(self, client: Any, member: str, at_s: float | None = None) -> Entry | None:
        key = self.key(at_s)
        pipe = client.pipeline(transaction=False)
        pipe.zrank(key, member)
        pipe.zscore(key, member)
        pos, stored = await pipe.execute()
        if pos is None or stored is None:
            return None
        better = await client.zcount(key, "-inf", f"({stored}")
        return Entry(member, -float(stored) + 0.0, int(pos) + 1, int(better) + 1)

    async def _around(self, client: Any, member: str, radius: int, at_s: float | None = None) -> list[Entry]:
        pos = await client.zrank(self.key(at_s), member)
        if pos is None:
            return []
        return await self._range(client, max(0, pos - radius), pos + radius, at_s)

    async def _range(self, client: Any, start: int, stop: int, at_s: float | None) -> list[Entry]:
        key = self.key(at_s)
        rows = await client.zrange(key, start, stop, withscores=True)
        if not rows:
            return []
        first_rank = int(await client.zcount(key, "-inf", f"({rows[0][1]}")) + 1
        return _entries(rows, start + 1, first_rank)

    async def _primary(self, op: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self.retry.run(op, self.counters)
        except REDIS_FAILURES as exc:
            raise LeaderboardUnavailable(f"{self.name}: {exc!r}") from exc


def _entries(rows: Sequence[tuple[Any, float]], first_position: int, first_rank: int) -> list[Entry]:
    """Rows of (member, stored negated score), best first -> Entries with competition ranks."""
    out: list[Entry] = []
    rank = first_rank
    for i, (member, stored) in enumerate(rows):
        position = first_position + i
        if i > 0 and stored != rows[i - 1][1]:
            rank = position
        out.append(Entry(as_str(member) or "", -float(stored) + 0.0, position, rank))
    return out
