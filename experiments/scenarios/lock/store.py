"""The resource the lock protects: one SQLite row per lock, shared by every process of a
run (the in-process clients, the generator processes, the slow holder)."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from labcommon.errors import LabError


class FencedStore:
    """The resource the lock protects: one SQLite row per lock, shared by processes.

    ``fenced``: a write is accepted only if its token is above the highest token
    seen, or equal to it from the holder that wrote it (a read-then-write inside one
    ``BEGIN IMMEDIATE`` transaction). An equal token from another holder is a reused
    fence (the counter went back): rejected, and counted in ``reused``. Unfenced:
    every write is accepted; a stale or reused one is counted in ``stale_accepted``."""

    def __init__(self, path: Path, locks: list[str]) -> None:
        self._mutex = threading.Lock()  # one connection, used from worker threads one at a time
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS resource (lock TEXT PRIMARY KEY, fence INTEGER NOT NULL, "
                           "holder TEXT, value TEXT, writes INTEGER NOT NULL, rejected INTEGER NOT NULL, "
                           "reused INTEGER NOT NULL, stale_accepted INTEGER NOT NULL)")
        self._conn.executemany("INSERT OR IGNORE INTO resource VALUES (?, 0, NULL, NULL, 0, 0, 0, 0)",
                               [(n,) for n in locks])

    def write(self, lock: str, token: int | None, holder: str | None, value: str, fenced: bool) -> bool:
        """Write ``value`` under ``token`` held by ``holder`` (None: no token, as with the naive
        lock); True = accepted."""
        with self._mutex:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT fence, holder FROM resource WHERE lock = ?", (lock,)).fetchone()
                if row is None:
                    raise LabError(f"no resource row for lock {lock!r}")
                reused = token is not None and token == row[0] and holder != row[1]
                stale = token is not None and (token < row[0] or reused)
                if fenced and stale:
                    self._conn.execute("UPDATE resource SET rejected = rejected + 1, reused = reused + ? "
                                       "WHERE lock = ?", (int(reused), lock))
                else:
                    newer = token is not None and token >= row[0]
                    self._conn.execute(
                        "UPDATE resource SET fence = max(fence, ?), holder = CASE WHEN ? THEN ? ELSE holder END, "
                        "value = ?, writes = writes + 1, reused = reused + ?, stale_accepted = stale_accepted + ? "
                        "WHERE lock = ?", (token or 0, int(newer), holder, value, int(reused), int(stale), lock))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return not (fenced and stale)

    def summary(self) -> dict[str, dict[str, Any]]:
        with self._mutex:
            rows = self._conn.execute("SELECT lock, fence, value, writes, rejected, reused, stale_accepted "
                                      "FROM resource")
            return {r[0]: {"fence": r[1], "value": r[2], "writes": r[3], "rejected": r[4], "reused": r[5],
                           "stale_accepted": r[6]} for r in rows}

    def close(self) -> None:
        with self._mutex:
            self._conn.close()
