"""The slow holder: a child process of the lock-expiry showcase (started by the lock
scenario through ``experiments.children``).

    python -m experiments.scenarios.lock.holder CONFIG.json

It idles until the parent's request (``Child.request``, which the fault plan
:func:`~experiments.scenarios.lock.scenario.pause_slow_holder` sends), then runs one
critical section on lock 0: it acquires, replies with the acquire's outcome (the pause
may come now), "works" until it has been paused and resumed (SIGCONT; at most
``WORK_TIMEOUT_S``) and writes with its token. The fault plan SIGSTOPs it for the whole
fault phase, far beyond the TTL; the in-process clients take lock 0 over meanwhile. When
resumed, the holder writes with its stale token: ``safe`` rejects it, ``nofence``
accepts it. SIGTERM (or the run's end) stops it after the section in progress.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from experiments.children import ChildProcess, child_main
from experiments.history import Op
from experiments.scenarios.lock.sections import CLIENT_TIMEOUT_S, TTL_MS, Sections
from experiments.scenarios.lock.store import FencedStore
from experiments.scenarios.lock.variants import make_locks
from topologies.clients import ClientPolicy

WORK_TIMEOUT_S = 60.0  # the slow holder "works" until resumed from its pause, at most this long


async def serve(child: ChildProcess) -> None:
    """Idle until asked, then one slow critical section on ``cfg["lock"]``; again until stopped."""
    cfg = child.cfg
    client = await child.client(ClientPolicy(socket_timeout_s=CLIENT_TIMEOUT_S, connect_timeout_s=CLIENT_TIMEOUT_S,
                                             retries=0, max_connections=8))
    store = FencedStore(Path(cfg["store"]), [cfg["lock"]])
    writer = child.writer
    sections = Sections(cfg["variant"], make_locks(cfg["variant"], client, [cfg["lock"]], TTL_MS), store,
                        writer.clock, writer.wall_at, writer.write_op)
    resumed = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGCONT, resumed.set)  # delivered when the pause ends

    def acquired(acq: Op) -> None:  # tell the fault plan: the pause may come now
        child.reply({"outcome": acq.outcome, "error": acq.error, "token": (acq.value or {}).get("token")})

    async def until_resumed() -> None:
        """The "work": it lasts until the process was paused and resumed, as a GC or VM stall
        in the middle of a critical section would."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resumed.wait(), WORK_TIMEOUT_S)

    try:
        child.ready()
        while await child.next_request():
            resumed.clear()
            await sections.run(cfg["lock"], cfg["process"], work=until_resumed, on_acquire=acquired)
    finally:
        store.close()


if __name__ == "__main__":
    child_main("slow holder", serve)
