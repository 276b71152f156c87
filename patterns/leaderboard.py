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

Every read is one command or one read-only script (range and the rank of its
first entry together), so an answer is one snapshot even under concurrent writes.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from patterns.common import Counters, LuaScript, RetryPolicy, as_str, tagged
from patterns.failures import REDIS_FAILURES

T = TypeVar("T")

#: what the replica-lag probe survives: Redis failures and an INFO reply without a usable offset
_PROBE_FAILURES: tuple[type[BaseException], ...] = (*REDIS_FAILURES, KeyError, TypeError, ValueError)

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

# Read-only scripts (flags=no-writes: they may run on a replica). Scores come back as
# strings, exactly as Redis formats them, so '(' .. score is the exact bound.
# KEYS[1] board; ARGV start, stop -> {first_rank, member, stored, member, stored, ...} ({} if empty)
_RANGE = """#!lua flags=no-writes
local rows = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES')
if #rows == 0 then return {} end
local out = {redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. rows[2]) + 1}
for _, v in ipairs(rows) do out[#out + 1] = v end
return out
"""
# KEYS[1] board; ARGV member -> {position0, stored, better} or {} when absent
_RANK = """#!lua flags=no-writes
local pos = redis.call('ZRANK', KEYS[1], ARGV[1])
if not pos then return {} end
local stored = redis.call('ZSCORE', KEYS[1], ARGV[1])
return {pos, stored, redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. stored)}
"""
# KEYS[1] board; ARGV member, radius -> {start0, first_rank, member, stored, ...} or {} when absent
_AROUND = """#!lua flags=no-writes
local pos = redis.call('ZRANK', KEYS[1], ARGV[1])
if not pos then return {} end
local start = math.max(0, pos - tonumber(ARGV[2]))
local rows = redis.call('ZRANGE', KEYS[1], start, pos + tonumber(ARGV[2]), 'WITHSCORES')
local out = {start, redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. rows[2]) + 1}
for _, v in ipairs(rows) do out[#out + 1] = v end
return out
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
    """A read that may come from a replica. ``stale`` False means: just before the
    read, the replica's link was up and it had applied everything the primary had
    applied when its offset was last probed, ``primary_probe_age_s`` before the read
    (at most ``lag_probe_interval_s``). Writes acknowledged after that probe may be
    missing. ``stale`` True: the link was down, the replica was behind that offset
    (``lag_bytes`` > 0), or the primary's offset is unknown (``lag_bytes`` None)."""

    value: T
    source: str  # "replica" | "primary"
    stale: bool
    lag_bytes: int | None
    primary_probe_age_s: float | None = None  # age of the primary offset the lag is measured against


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
        self._incr = LuaScript(client, _INCR)
        self._add = LuaScript(client, _ADD)
        self._range_script = LuaScript(client, _RANGE)
        self._rank_script = LuaScript(client, _RANK)
        self._around_script = LuaScript(client, _AROUND)
        self._primary_offset: tuple[float, int] | None = None  # (probed_at_monotonic, master_repl_offset)

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
        stamp = dt.datetime.fromtimestamp(start, dt.UTC).strftime(fmt)
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
        fall back to the primary (counted). E.g. ``replica_read("top", 10)``.

        Before the read: the primary's ``master_repl_offset`` (probed at most every
        ``lag_probe_interval_s``, cached in between), then the replica's link status
        and ``slave_repl_offset`` (every read). The replica applies the stream in
        order, so if its offset had reached the primary's before the read, the read
        contains every write the primary had applied at that probe. See ``ReadResult``."""
        if what not in self.READS:
            raise ValueError(f"unknown read {what!r}; known: {self.READS}")
        fn = getattr(self, f"_{what}")
        if self.replica is not None:
            primary = await self._probe_primary()
            try:
                rinfo = await self.replica.info("replication")
                value = await fn(self.replica, *args)
            except REDIS_FAILURES as exc:
                self.counters.error(exc)
                self.counters.inc("replica_fallbacks")
            else:
                self.counters.inc("replica_reads")
                link_up = rinfo.get("master_link_status") == "up"
                lag: int | None = None
                age: float | None = None
                if primary is not None and "slave_repl_offset" in rinfo:
                    lag = max(0, primary[1] - int(rinfo["slave_repl_offset"]))
                    age = time.monotonic() - primary[0]
                return ReadResult(value, "replica", (not link_up) or lag is None or lag > 0, lag, age)
        value = await self._primary(lambda: fn(self.client, *args))
        return ReadResult(value, "primary", False, 0, 0.0)

    async def _probe_primary(self) -> tuple[float, int] | None:
        """(probed_at_monotonic, master_repl_offset), probed at most every
        ``lag_probe_interval_s``; None when the primary cannot tell."""
        now = time.monotonic()
        if self._primary_offset is not None and now - self._primary_offset[0] < self.lag_probe_interval_s:
            return self._primary_offset
        try:
            pinfo = await self.client.info("replication")
            self._primary_offset = (now, int(pinfo["master_repl_offset"]))
        except _PROBE_FAILURES as exc:
            if isinstance(exc, REDIS_FAILURES):
                self.counters.error(exc)
            return None
        return self._primary_offset

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
        reply = await self._run(self._rank_script, client, self.key(at_s), member)
        if not reply:
            return None
        pos, stored, better = reply
        return Entry(member, -float(stored) + 0.0, int(pos) + 1, int(better) + 1)

    async def _around(self, client: Any, member: str, radius: int, at_s: float | None = None) -> list[Entry]:
        reply = await self._run(self._around_script, client, self.key(at_s), member, radius)
        if not reply:
            return []
        return _entries(_pairs(reply[2:]), int(reply[0]) + 1, int(reply[1]))

    async def _range(self, client: Any, start: int, stop: int, at_s: float | None) -> list[Entry]:
        reply = await self._run(self._range_script, client, self.key(at_s), start, stop)
        if not reply:
            return []
        return _entries(_pairs(reply[1:]), start + 1, int(reply[0]))

    async def _run(self, script: Any, client: Any, key: str, *args: Any) -> Any:
        """A read-only script on ``client`` (the primary's or the replica's)."""
        return await script(keys=[key], args=list(args), client=client)

    async def _primary(self, op: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self.retry.run(op, self.counters)
        except REDIS_FAILURES as exc:
            raise LeaderboardUnavailable(f"{self.name}: {exc!r}") from exc


def _pairs(flat: Sequence[Any]) -> list[tuple[Any, float]]:
    """[member, stored, member, stored, ...] (a script's reply) -> [(member, stored)]."""
    return [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]


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
