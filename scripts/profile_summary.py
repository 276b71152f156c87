"""Where the generator's event loop spends its time: a py-spy profile summed by category.

    py-spy record -r 300 -f raw -o gen.txt -- python -m experiments.bench_redis --rates 10000 --workers 1
    python scripts/profile_summary.py gen.txt

``-f raw`` writes collapsed stacks (``frame;frame;... count``). Only samples taken on the
event loop count (``Runner.run`` / uvloop), without what runs after the load (reading
the history back, building the histograms). Each sample goes to the first category
found walking its stack from the leaf up (so JSON encoding under ``write_op`` is
"history records", a socket send under redis-py is "redis-py").
"""
from __future__ import annotations

import re
import sys
from collections import Counter

CATEGORIES: list[tuple[str, str]] = [
    ("HDR histogram recording", r"\(hdrh/"),
    ("op RNG (Random construction, seeding)", r"\(random\.py|oprandom\.py|op_rng"),
    ("history records (Op, JSON encoding, buffer)", r"\(json/encoder|experiments/history\.py"),
    ("redis-py client (command, pool, parser, socket timeouts)", r"\(redis/"),
    ("concurrency bound (asyncio.Semaphore / Slots)", r"\(asyncio/locks\.py|\(asyncio/mixins\.py|Slots\."),
    ("attempt() wrapper", r"^attempt "),
]
AFTER_THE_LOAD = ("read_history", "summarize", "_hist_of", "to_wire", "merge_histories")


def categorise(stack: str) -> str | None:
    """The category of one collapsed stack, None for samples outside the load."""
    if ("Runner.run" not in stack and "uvloop" not in stack) or any(s in stack for s in AFTER_THE_LOAD):
        return None
    frames = stack.split(";")
    for frame in reversed(frames):
        for name, pattern in CATEGORIES:
            if re.search(pattern, frame):
                return name
    leaf = frames[-1]
    if "experiments/" in leaf:
        return "scheduler and op wrappers (own code)"
    if "asyncio/" in leaf or "uvloop" in leaf or "runners.py" in leaf:
        return "event loop, tasks, timers (asyncio/uvloop)"
    return "other"


def summarise(lines: list[str]) -> tuple[int, Counter[str]]:
    totals: Counter[str] = Counter()
    for line in lines:
        line = line.rstrip()
        if not line or " " not in line:
            continue
        stack, count = line.rsplit(" ", 1)
        category = categorise(stack)
        if category is not None:
            totals[category] += int(count)
    return sum(totals.values()), totals


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: python scripts/profile_summary.py PROFILE.txt (py-spy record -f raw)", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        n, totals = summarise(f.readlines())
    print(f"{n} samples on the event loop")
    for name, count in totals.most_common():
        print(f"{100 * count / max(n, 1):5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
