"""A child for the harness's own tests (``experiments.children``), no Redis: it records
each of the parent's requests as an op and answers with its number (config ``deaf``:
it ignores SIGTERM, as a hung child would).

    python -m tests.experiments.harness_child CONFIG.json
"""
from __future__ import annotations

import asyncio
import signal

from experiments.children import ChildProcess, child_main
from experiments.history import OK, Op


async def serve(child: ChildProcess) -> None:
    if child.cfg.get("deaf"):  # a child that hangs: it ignores SIGTERM (it must be aborted)
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child.ready()
    n = 0
    while await child.next_request():
        n += 1
        t = child.writer.clock()
        child.writer.write_op(Op(0, "asked", {"n": n}, t, t, t, child.writer.wall_at(t), OK))
        child.reply({"n": n, "tag": child.cfg.get("tag")})


if __name__ == "__main__":
    child_main("harness test child", serve)
