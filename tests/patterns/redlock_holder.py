"""A Redlock holder in its own process, so a test can SIGSTOP it (the lab's
``client_pause`` fault) in the middle of its critical section.

    python -m tests.patterns.redlock_holder '<json config>'

Config: ``ports`` (the nodes' proxied ports), ``password``, ``name``, ``ttl_ms``,
``work_s`` (time between "acquired" and the write: the pause lands here),
``resource`` (a file the holder appends "A" to). It prints one JSON line when it
holds the lock and one after its write; it never checks validity between the two,
which is the check-then-act gap Kleppmann's critique is about.
"""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from patterns.redlock import Redlock, aclose_all


async def main(cfg: dict[str, Any]) -> None:
    clients = [redis.asyncio.Redis(host="127.0.0.1", port=p, password=cfg["password"], socket_timeout=0.5,
                                   socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)) for p in cfg["ports"]]
    try:
        lock = Redlock(clients, cfg["name"], ttl_ms=cfg["ttl_ms"], instance_timeout_ms=200)
        lease = await lock.acquire(timeout_s=5)
        print(json.dumps({"acquired": lease.token, "granted": lease.granted, "remaining_s": lease.remaining_s()}),
              flush=True)
        await asyncio.sleep(cfg["work_s"])  # the work; a pause here outlasts the validity
        with Path(cfg["resource"]).open("a") as f:  # noqa: ASYNC230 - one line, on purpose unfenced
            f.write("A\n")  # no fence: nothing can refuse this write
        print(json.dumps({"wrote": True, "valid_at_write": lease.is_valid()}), flush=True)
    finally:
        await aclose_all(clients)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
