"""Acknowledged writes lost: Jepsen set and counter checkers.

Set: each write op adds a unique element (``args[value_arg]``); the final read
(``final_state[final_key]``, a list) must contain every element whose write
was acknowledged (ok). Unknown writes may or may not be present; failed writes
must not be; elements nobody tried to add must not be.

Counter: each increment op adds ``args[amount_arg]`` (default 1); the final
value must lie within [sum of ok increments, sum of ok + unknown increments].

Loss is reported twice, as Jepsen does: over every acknowledged write, and
within the windows in which loss was possible (per fault cycle, from the
inject to the moment the topology settled after the heal: the last role or
topology event before the next cycle, at least the heal), so runs with
different baseline lengths stay comparable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..history import FAIL as OP_FAIL
from ..history import OK as OP_OK
from ..history import ROLE, TOPOLOGY, History
from ..history import UNKNOWN as OP_UNKNOWN
from ..stats import Spread
from .base import UNKNOWN, CheckResult, arg, fmt_pct, get_params, judged

SET_DEFAULTS = {"write_op": "add", "value_arg": "value", "final_key": "set"}


LOST_CLAIM = "no acknowledged write is lost"


def loss_windows(history: History) -> list[tuple[int, float, float]]:
    """Per fault cycle ``(index, start, end)``: from the inject to the last role or
    topology event before the next cycle (the topology settled), at least the heal."""
    out = []
    for c in history.cycles():
        changes = [e.t for e in history.events
                   if e.kind in (ROLE, TOPOLOGY) and c.heal <= e.t < c.next]
        out.append((c.index, c.start, max([c.heal, *changes])))
    return out


def lost_writes(history: History, final_state: Mapping[str, Any],
                params: Mapping[str, Any]) -> CheckResult:
    """Claim: every acknowledged set write is in the final read."""
    p = get_params("lost_writes", params, SET_DEFAULTS)
    if p["final_key"] not in final_state:
        return CheckResult("lost_writes", UNKNOWN, {},
                           f"No final read ('{p['final_key']}') in the final state"
                           + (f" ({final_state['final_read_error']})" if final_state.get("final_read_error") else "")
                           + ", so lost writes cannot be counted.", LOST_CLAIM)
    final = {_key(v) for v in final_state[p["final_key"]]}
    by: dict[str, set[Any]] = {OP_OK: set(), OP_FAIL: set(), OP_UNKNOWN: set()}
    ack_at: dict[Any, float] = {}
    written: dict[Any, Any] = {}  # key -> the value as the workload wrote it (for the examples)
    for o in history.ops:
        if o.op == p["write_op"]:
            v = _key(arg(o.args, p["value_arg"]))
            written.setdefault(v, arg(o.args, p["value_arg"]))
            by[o.outcome].add(v)
            if o.ok:
                ack_at[v] = o.end
    acked = by[OP_OK]
    lost = acked - final
    failed_present = (by[OP_FAIL] - acked - by[OP_UNKNOWN]) & final
    unexpected = final - acked - by[OP_FAIL] - by[OP_UNKNOWN]
    m: dict[str, Any] = {"acked": len(acked), "lost": len(lost),
         "lost_ratio": len(lost) / len(acked) if acked else 0.0,
         "unknown": len(by[OP_UNKNOWN]), "unknown_present": len(by[OP_UNKNOWN] & final),
         "failed_present": len(failed_present), "unexpected": len(unexpected),
         "final_size": len(final), "lost_examples": [written[k] for k in sorted(lost, key=str)[:10]]}
    windows: list[dict[str, Any]] = []
    for i, a, b in loss_windows(history):
        acked_in = {v for v, t in ack_at.items() if a <= t < b}
        lost_in = acked_in & lost
        windows.append({"cycle": i, "start": a, "end": b, "acked": len(acked_in), "lost": len(lost_in),
                        "lost_ratio": len(lost_in) / len(acked_in) if acked_in else None})
    in_acked = sum(w["acked"] for w in windows)
    in_lost = sum(w["lost"] for w in windows)
    m.update(windows=windows, acked_in_windows=in_acked, lost_in_windows=in_lost,
             lost_ratio_in_windows=in_lost / in_acked if in_acked else None,
             lost_ratio_spread=Spread.of(w["lost_ratio"] for w in windows).to_json(),
             lost_outside_windows=len(lost) - in_lost)
    text = (f"{m['lost']} of {m['acked']} acknowledged writes were lost "
            f"({fmt_pct(m['lost_ratio'])})")
    if windows:
        text += (f"; within the fault windows {in_lost} of {in_acked} "
                 f"({fmt_pct(m['lost_ratio_in_windows'])})")
    text += f"; {m['unknown_present']} of {m['unknown']} writes with unknown outcome are present."
    extra = []
    if failed_present:
        extra.append(f"{len(failed_present)} writes reported failed are present anyway")
    if unexpected:
        extra.append(f"{len(unexpected)} elements nobody wrote appeared")
    if extra:
        text += " Also: " + "; ".join(extra) + "."
    return judged("lost_writes", bool(lost or extra), m, text, LOST_CLAIM)


def _key(v: Any) -> Any:
    """A written or read value as Redis stores it: SADD 5 stores "5", and a read returns bytes or
    str, so an int written and the "5" read back are the same member."""
    if isinstance(v, list):
        return tuple(_key(x) for x in v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return v


COUNTER_DEFAULTS = {"incr_op": "incr", "amount_arg": "amount", "final_key": "counter"}


COUNTER_CLAIM = "no acknowledged increment is lost and none appears from nowhere"


def counter(history: History, final_state: Mapping[str, Any],
            params: Mapping[str, Any]) -> CheckResult:
    """Claim: the final counter lies within [acked sum, acked + unknown sum]."""
    p = get_params("counter", params, COUNTER_DEFAULTS)
    if p["final_key"] not in final_state:
        return CheckResult("counter", UNKNOWN, {},
                           f"No final read ('{p['final_key']}') in the final state.", COUNTER_CLAIM)
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
        return judged("counter", True, m, f"The counter reads {final:g} but {lo:g} "
                      f"was acknowledged: {lo - final:g} acknowledged increments lost.", COUNTER_CLAIM)
    if final > hi + 1e-9:
        return judged("counter", True, m, f"The counter reads {final:g}, more than "
                      f"the {hi:g} that could have been added.", COUNTER_CLAIM)
    return judged("counter", False, m, f"The counter reads {final:g}, within the "
                  f"acknowledged {lo:g} to possible {hi:g}: no increment lost.", COUNTER_CLAIM)
