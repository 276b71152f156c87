"""A seeded SQLite products database: the "source of truth" behind the cache.

sqlite3 is blocking, so every query runs on a small thread pool (one
connection per worker thread, WAL mode so readers do not block the writer).
``latency_ms`` adds a fixed delay per query to stand in for a remote database;
the pool size then bounds database throughput, which is exactly what a cache
outage exposes. Every query is counted (``queries``).

Each row carries a ``revision``, incremented by every price update in the same
transaction, so a product's revisions follow the database's commit order: a
cached copy with a lower revision than another is older, whatever the clocks say.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Product:
    id: int
    name: str
    price_cents: int
    stock: int
    revision: int = 0  # incremented by each committed update of the row (commit order per product)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "price_cents": self.price_cents, "stock": self.stock,
                "revision": self.revision}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Product:
        return cls(int(d["id"]), str(d["name"]), int(d["price_cents"]), int(d["stock"]), int(d.get("revision", 0)))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    price_cents INTEGER NOT NULL,
    stock       INTEGER NOT NULL,
    revision    INTEGER NOT NULL DEFAULT 0
)
"""

_ADJECTIVES = ["red", "blue", "steel", "oak", "tiny", "large", "smart", "quiet", "fast", "eco"]
_NOUNS = ["kettle", "lamp", "chair", "drill", "mug", "desk", "fan", "router", "bike", "tent"]


class ProductsDB:
    """Async facade over a SQLite file. Use ``create`` to build and seed one."""

    def __init__(self, path: str | Path, *, workers: int = 4, latency_ms: float = 0.0) -> None:
        self.path = str(path)
        self.latency_ms = latency_ms
        self.queries = 0  # incremented on the event loop thread only
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="products-db")

    @classmethod
    def create(cls, path: str | Path, *, n_products: int = 1000, seed: int = 42, **kwargs: Any) -> ProductsDB:
        """Create (or replace) the database at ``path`` with ``n_products`` seeded rows."""
        rng = random.Random(seed)
        Path(path).unlink(missing_ok=True)
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            conn.executemany(
                "INSERT INTO products (id, name, price_cents, stock) VALUES (?, ?, ?, ?)",
                [
                    (i, f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} #{i}",
                     rng.randint(199, 99_999), rng.randint(0, 500))
                    for i in range(1, n_products + 1)
                ],
            )
        conn.close()
        return cls(path, **kwargs)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self.queries += 1

        def work() -> T:
            if self.latency_ms:
                time.sleep(self.latency_ms / 1000)
            return fn(self._conn())

        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    async def get_product(self, product_id: int) -> Product | None:
        def q(conn: sqlite3.Connection) -> Product | None:
            row = conn.execute(
                "SELECT id, name, price_cents, stock, revision FROM products WHERE id = ?", (product_id,)
            ).fetchone()
            return Product(*row) if row else None

        return await self._run(q)

    async def update_price(self, product_id: int, price_cents: int) -> int | None:
        """Set the price and increment the revision in one transaction; returns the new
        revision (None: no such product, nothing changed)."""

        def q(conn: sqlite3.Connection) -> int | None:
            with conn:  # fetchall: the statement must finish before the commit
                rows = conn.execute(
                    "UPDATE products SET price_cents = ?, revision = revision + 1 WHERE id = ? RETURNING revision",
                    (price_cents, product_id),
                ).fetchall()
            return int(rows[0][0]) if rows else None

        return await self._run(q)

    def close(self) -> None:
        """Stop the pool and close every worker connection."""
        self._pool.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
