"""Leaderboard lost increments: per member, the final score must lie within
[sum of acked ZINCRBY amounts, acked + unknown amounts].

Ops: ``zincrby`` with args ``{"member": m, "amount": x}``. Final state:
``scores`` = ``{member: score}``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ..history import FAIL as OP_FAIL
from ..history import History
from .base import UNKNOWN, CheckResult, arg, get_params, judged

CLAIM = "no acknowledged increment is lost and none appears from nowhere"
DEFAULTS = {"incr_op": "zincrby", "member_arg": "member", "amount_arg": "amount",
            "final_key": "scores", "tolerance": 1e-6}


def leaderboard_increments(history: History, final_state: Mapping[str, Any],
                           params: Mapping[str, Any]) -> CheckResult:
    """Claim: no acknowledged increment lost (final < acked) and none phantom (final > possible)."""
    p = get_params("leaderboard_increments", params, DEFAULTS)
    if p["final_key"] not in final_state:
        reason = f" ({final_state['final_read_error']})" if final_state.get("final_read_error") else ""
        return CheckResult("leaderboard_increments", UNKNOWN, {},
                           f"No final read ('{p['final_key']}') in the final state{reason}.", CLAIM)
    scores = {str(k): float(v) for k, v in (final_state[p["final_key"]] or {}).items()}
    lo: dict[str, float] = defaultdict(float)
    hi: dict[str, float] = defaultdict(float)
    for o in history.ops:
        if o.op != p["incr_op"] or o.outcome == OP_FAIL:
            continue
        m, x = str(arg(o.args, p["member_arg"])), float(arg(o.args, p["amount_arg"], 1))
        hi[m] += x
        if o.ok:
            lo[m] += x
    tol = p["tolerance"]
    lost: dict[str, float] = {}
    phantom: dict[str, float] = {}
    for m in set(lo) | set(hi) | set(scores):
        s = scores.get(m, 0.0)
        if s < lo[m] - tol:
            lost[m] = lo[m] - s
        if s > hi[m] + tol:
            phantom[m] = s - hi[m]
    acked = sum(lo.values())
    met = {"members": len(set(lo) | set(scores)), "acked_sum": acked,
           "lost_sum": sum(lost.values()), "lost_members": len(lost),
           "phantom_sum": sum(phantom.values()), "phantom_members": len(phantom),
           "lost_examples": dict(sorted(lost.items())[:10])}
    text = (f"{met['lost_sum']:g} of {acked:g} acknowledged points were lost across "
            f"{len(lost)} members")
    if phantom:
        text += f"; {met['phantom_sum']:g} points appeared that nobody added"
    return judged("leaderboard_increments", bool(lost or phantom), met, text + ".", CLAIM)
