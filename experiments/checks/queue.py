"""Work queue: lost acknowledged messages, duplicates, redelivery delay.

Ops ``produce`` (args ``{"id": m}``): ok means the queue acknowledged the
message. ``process`` (args ``{"id": m}``): one consumer's attempt to handle
the message; ok means it was processed and acknowledged. Final state
``pending``: ids still in the queue after the drain (optional).

* lost: produced-acked, never processed ok, and not pending at the end.
  Without a ``pending`` final read, unprocessed messages count as lost.
* duplicates: extra ok processings of one id (at-least-once delivery allows
  them unless ``allow_duplicates`` is false).
* effects: final state ``effects`` (optional) lists the ids the handler's own
  idempotent store holds; they count as processed even when the worker died
  before recording its attempt (its record is the evidence, the store the truth).
* redelivery delay: for ids attempted more than once, the gap between one
  attempt's end and the next attempt's start (s).
* unexpected: processed ids nobody produced.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ..history import FAIL as OP_FAIL
from ..history import History, Op
from .base import UNKNOWN, CheckResult, arg, fmt_s, get_params, judged

DEFAULTS = {"produce_op": "produce", "process_op": "process", "id_arg": "id",
            "pending_key": "pending", "effects_key": "effects", "allow_duplicates": True,
            "max_redelivery_s": None,  # s; fail if a redelivery took longer
            "max_stuck": None,  # fail if more acked messages than this are still unprocessed at the end
            "deliveries_arg": "deliveries"}  # process arg: the delivery count (redelivered when > 1)


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
    effects = final_state.get(p["effects_key"])
    store_only = (set(effects) - processed) if effects is not None else set()
    processed |= store_only & set(produced_ok)
    lost = sorted((set(produced_ok) - processed - pending_set), key=str)
    stuck = sorted((set(produced_ok) - processed) & pending_set, key=str)
    dups = {m: sum(o.ok for o in ops) - 1 for m, ops in attempts.items()
            if sum(o.ok for o in ops) > 1}
    unexpected = sorted(processed - produced_any, key=str)
    gaps: list[float] = []
    for ops in attempts.values():
        ops.sort(key=lambda o: o.start)
        gaps += [b.start - a.end for a, b in itertools.pairwise(ops)]
    delivery = [min(o.end for o in attempts[m] if o.ok) - produced_ok[m].end
                for m in processed if m in produced_ok and any(o.ok for o in attempts[m])]
    redelivered = sorted({mid for mid, ops in attempts.items()
                          if any(int(arg(o.args, p["deliveries_arg"]) or 1) > 1 for o in ops)}, key=str)
    m: dict[str, Any] = {"produced_acked": len(produced_ok), "processed": len(processed),
         "redelivered_messages": len(redelivered),
         "lost": len(lost), "lost_examples": lost[:10], "pending_unprocessed": len(stuck),
         "duplicates": sum(dups.values()), "duplicate_ids": len(dups),
         "unexpected": len(unexpected), "redeliveries": len(gaps),
         "redelivery_p50_s": _pct(gaps, 0.5), "redelivery_max_s": max(gaps, default=None),
         "delivery_p50_s": _pct(delivery, 0.5), "delivery_p99_s": _pct(delivery, 0.99),
         "final_pending_known": pending is not None,
         "effects_in_store": len(effects) if effects is not None else None,
         "processed_without_record": len(store_only)}
    claim = "no acknowledged message is lost" + (
        f" or left unprocessed (at most {p['max_stuck']})" if p["max_stuck"] is not None else "") + (
        "" if p["allow_duplicates"] else ", none processed twice")
    if not produced_ok and not attempts:
        return CheckResult("queue_delivery", UNKNOWN, m, "No queue operations in the history.", claim)
    text = (f"{len(lost)} of {len(produced_ok)} acknowledged messages were never processed"
            + ("" if pending is not None else " (no final queue read: unprocessed counted as lost)")
            + f"; {len(stuck)} still unprocessed at the end; {m['duplicates']} duplicate processings; "
            f"{len(redelivered)} messages handled on a redelivery; {len(gaps)} repeated attempts "
            f"(slowest gap {fmt_s(m['redelivery_max_s'])}).")
    bad = []
    if lost:
        bad.append("lost messages")
    if p["max_stuck"] is not None and len(stuck) > p["max_stuck"]:
        bad.append(f"{len(stuck)} acknowledged messages never processed before the end")
    if unexpected:
        bad.append(f"{len(unexpected)} processed messages were never produced")
    if dups and not p["allow_duplicates"]:
        bad.append("duplicates not allowed")
    lim = p["max_redelivery_s"]
    if lim is not None and gaps and max(gaps) > lim:
        bad.append(f"redelivery slower than {fmt_s(lim)}")
    return judged("queue_delivery", bool(bad), m, text + (" Problems: " + "; ".join(bad) + "." if bad else ""),
                  claim)
