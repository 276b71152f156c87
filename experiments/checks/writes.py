"""Acknowledged writes lost: Jepsen set and counter checkers.

Set: each write op adds a unique element (``args[value_arg]``); the final read
(``final_state[final_key]``, a list) must contain every element whose write
was acknowledged (ok). Unknown writes may or may not be present; failed writes
must not be; elements nobody tried to add must not be.

Counter: each increment op adds ``args[amount_arg]`` (default 1); the final
value must lie within [sum of ok increments, sum of ok + unknown increments].
"""

from __future__ import annotations

from typing import Any, Mapping

from ..history import FAIL as OP_FAIL
from ..history import OK as OP_OK
from ..history import UNKNOWN as OP_UNKNOWN
from ..history import History
from .base import FAIL, PASS, UNKNOWN, CheckResult, arg, fmt_pct, get_params

SET_DEFAULTS = {"write_op": "add", "value_arg": "value", "final_key": "set"}


def lost_writes(history: History, final_state: Mapping[str, Any],
                params: Mapping[str, Any]) -> CheckResult:
    """Acknowledged set writes absent from the final read."""
    p = get_params("lost_writes", params, SET_DEFAULTS)
    if p["final_key"] not in final_state:
        return CheckResult("lost_writes", UNKNOWN, {},
                           f"No final read ('{p['final_key']}') in the final state, "
                           "so lost writes cannot be counted.")
    final = {_key(v) for v in final_state[p["final_key"]]}
    by = {OP_OK: set(), OP_FAIL: set(), OP_UNKNOWN: set()}
    for o in history.ops:
        if o.op == p["write_op"]:
            by[o.outcome].add(_key(arg(o.args, p["value_arg"])))
    acked = by[OP_OK]
    lost = acked - final
    failed_present = (by[OP_FAIL] - acked - by[OP_UNKNOWN]) & final
    unexpected = final - acked - by[OP_FAIL] - by[OP_UNKNOWN]
    m = {"acked": len(acked), "lost": len(lost),
         "lost_ratio": len(lost) / len(acked) if acked else 0.0,
         "unknown": len(by[OP_UNKNOWN]), "unknown_present": len(by[OP_UNKNOWN] & final),
         "failed_present": len(failed_present), "unexpected": len(unexpected),
         "final_size": len(final), "lost_examples": sorted(lost, key=str)[:10]}
    text = (f"{m['lost']} of {m['acked']} acknowledged writes were lost "
            f"({fmt_pct(m['lost_ratio'])}); {m['unknown_present']} of {m['unknown']} "
            "writes with unknown outcome are present.")
    extra = []
    if failed_present:
        extra.append(f"{len(failed_present)} writes reported failed are present anyway")
    if unexpected:
        extra.append(f"{len(unexpected)} elements nobody wrote appeared")
    if extra:
        text += " Also: " + "; ".join(extra) + "."
    return CheckResult("lost_writes", FAIL if lost or extra else PASS, m, text)


def _key(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


COUNTER_DEFAULTS = {"incr_op": "incr", "amount_arg": "amount", "final_key": "counter"}


def counter(history: History, final_state: Mapping[str, Any],
            params: Mapping[str, Any]) -> CheckResult:
    """Final counter within [acked sum, acked + unknown sum]."""
    p = get_params("counter", params, COUNTER_DEFAULTS)
    if p["final_key"] not in final_state:
        return CheckResult("counter", UNKNOWN, {},
                           f"No final read ('{p['final_key']}') in the final state.")
    final = float(final_state[p["final_key"]] or 0)
    lo = hi = 0.0
    for o in history.ops:
        if o.op == p["incr_op"] and o.outcome != OP_FAIL:
            amount = float(arg(o.args, p["amount_arg"], 1))
            hi += amount
            if o.ok:
                lo += amount
    m = {"final": final, "acked_sum": lo, "possible_max": hi,
         "lost": max(0.0, lo - final), "phantom": max(0.0, final - hi)}
    if final < lo - 1e-9:
        return CheckResult("counter", FAIL, m, f"The counter reads {final:g} but {lo:g} "
                           f"was acknowledged: {lo - final:g} acknowledged increments lost.")
    if final > hi + 1e-9:
        return CheckResult("counter", FAIL, m, f"The counter reads {final:g}, more than "
                           f"the {hi:g} that could have been added.")
    return CheckResult("counter", PASS, m, f"The counter reads {final:g}, within the "
                       f"acknowledged {lo:g} to possible {hi:g}: no increment lost.")
