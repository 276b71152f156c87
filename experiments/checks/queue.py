"""Work queue: lost acknowledged messages, duplicates, redelivery delay.

Ops ``produce`` (args ``{"id": m}``): ok means the queue acknowledged the
message. ``process`` (args ``{"id": m}``): one consumer's attempt to handle
the message; ok means it was processed and acknowledged. Final state
``pending``: ids still in the queue after the drain (optional).

* lost: produced-acked, never processed ok, and not pending at the end.
  Without a ``pending`` final read, unprocessed messages count as lost.
* duplicates: extra ok processings of one id (at-least-once delivery allows
  them unless ``allow_duplicates`` is false).
* redelivery delay: for ids attempted more than once, the gap between one
  attempt's end and the next attempt's start (s).
* unexpected: processed ids nobody produced.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping

from ..history import FAIL as OP_FAIL, History, Op
from .base import FAIL, PASS, UNKNOWN, CheckResult, arg, fmt_s, get_params

DEFAULTS = {"produce_op": "produce", "process_op": "process", "id_arg": "id",
            "pending_key": "pending", "allow_duplicates": True,
            "max_redelivery_s": None}  # s; fail if a redelivery took longer


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def queue_delivery(history: History, final_state: Mapping[str, Any],
                   params: Mapping[str, Any]) -> CheckResult:
    """Lost acknowledged messages, duplicates and redelivery delays."""
    p = get_params("queue_delivery", params, DEFAULTS)
    produced_ok: dict[Any, Op] = {}
    produced_any: set[Any] = set()
    attempts: dict[Any, list[Op]] = defaultdict(list)
    for o in history.ops:
        mid = arg(o.args, p["id_arg"])
        if o.op == p["produce_op"]:
            if o.outcome != OP_FAIL:
                produced_any.add(mid)
            if o.ok:
                produced_ok[mid] = o
        elif o.op == p["process_op"]:
            attempts[mid].append(o)
    pending = final_state.get(p["pending_key"])
    pending_set = set(pending) if pending is not None else set()
    processed = {m for m, ops in attempts.items() if any(o.ok for o in ops)}
    lost = sorted((set(produced_ok) - processed - pending_set), key=str)
    stuck = sorted((set(produced_ok) - processed) & pending_set, key=str)
    dups = {m: sum(o.ok for o in ops) - 1 for m, ops in attempts.items()
            if sum(o.ok for o in ops) > 1}
    unexpected = sorted(processed - produced_any, key=str)
    gaps: list[float] = []
    for ops in attempts.values():
        ops.sort(key=lambda o: o.start)
        gaps += [b.start - a.end for a, b in zip(ops, ops[1:])]
    delivery = [min(o.end for o in attempts[m] if o.ok) - produced_ok[m].end
                for m in processed if m in produced_ok]
    m = {"produced_acked": len(produced_ok), "processed": len(processed),
         "lost": len(lost), "lost_examples": lost[:10], "pending_unprocessed": len(stuck),
         "duplicates": sum(dups.values()), "duplicate_ids": len(dups),
         "unexpected": len(unexpected), "redeliveries": len(gaps),
         "redelivery_p50_s": _pct(gaps, 0.5), "redelivery_max_s": max(gaps, default=None),
         "delivery_p50_s": _pct(delivery, 0.5), "delivery_p99_s": _pct(delivery, 0.99),
         "final_pending_known": pending is not None}
    if not produced_ok and not attempts:
        return CheckResult("queue_delivery", UNKNOWN, m, "No queue operations in the history.")
    text = (f"{len(lost)} of {len(produced_ok)} acknowledged messages were never processed"
            + ("" if pending is not None else " (no final queue read: unprocessed counted as lost)")
            + f"; {m['duplicates']} duplicate processings; {len(gaps)} redeliveries "
            f"(slowest {fmt_s(m['redelivery_max_s'])}).")
    bad = []
    if lost:
        bad.append("lost messages")
    if unexpected:
        bad.append(f"{len(unexpected)} processed messages were never produced")
    if dups and not p["allow_duplicates"]:
        bad.append("duplicates not allowed")
    lim = p["max_redelivery_s"]
    if lim is not None and gaps and max(gaps) > lim:
        bad.append(f"redelivery slower than {fmt_s(lim)}")
    if bad:
        return CheckResult("queue_delivery", FAIL, m, text + " Problems: " + "; ".join(bad) + ".")
    return CheckResult("queue_delivery", PASS, m, text)
