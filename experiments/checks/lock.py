"""Lock checks: overlapping holders and fencing.

Holds. Ops ``acquire`` (args ``{"lock": name, "ttl_s": t?}``) and ``release``
(args ``{"lock": name}``), per client. A client believes it holds the lock
from the end of an ok acquire to the start of its next release of that lock
(or, without one, to acquire end + ``ttl_s``, or to the end of the history).
Two clients' holds of one lock that overlap are a violation: both ran their
critical section at once.

Fencing. Op ``fenced_write`` (args ``{"lock": name, "token": n}``) is accepted
when ok with a truthy value (or ``value["accepted"]``); rejected when ok with
a falsy value or failed with an error in ``rejected_errors``. A violation is
an accepted write whose token is lower than a token already accepted (by a
write acknowledged before it started).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from typing import Any, Mapping

from ..history import History, Op
from .base import FAIL, PASS, UNKNOWN, CheckResult, arg, fmt_s, get_params, value_field

OVERLAP_DEFAULTS = {"acquire_op": "acquire", "release_op": "release",
                    "lock_arg": "lock", "ttl_arg": "ttl_s"}


def lock_holds(history: History, p: Mapping[str, Any]) -> dict[Any, list[tuple[float, float, int]]]:
    """Per lock: believed holds as (start s, end s, client)."""
    per_client: dict[tuple[int, Any], list[Op]] = defaultdict(list)
    for o in history.ops:
        if o.op in (p["acquire_op"], p["release_op"]):
            per_client[(o.client, arg(o.args, p["lock_arg"]))].append(o)
    t_end = history.t_end
    holds: dict[Any, list[tuple[float, float, int]]] = defaultdict(list)
    for (client, lock), ops in per_client.items():
        ops.sort(key=lambda o: o.start)
        held: Op | None = None
        for o in ops:
            if o.op == p["acquire_op"] and o.ok and held is None:
                held = o
            elif o.op == p["release_op"] and held is not None:
                holds[lock].append((held.end, o.start, client))
                held = None
        if held is not None:
            ttl = arg(held.args, p["ttl_arg"])
            holds[lock].append((held.end, held.end + ttl if ttl is not None else t_end, client))
    return holds


def lock_overlap(history: History, final_state: Mapping[str, Any],
                 params: Mapping[str, Any]) -> CheckResult:
    """Fail if two clients' holds of the same lock overlap in time."""
    p = get_params("lock_overlap", params, OVERLAP_DEFAULTS)
    holds = lock_holds(history, p)
    overlaps: list[dict[str, Any]] = []
    max_overlap = 0.0
    n = 0
    for lock, hs in holds.items():
        hs.sort()
        n += len(hs)
        for i, (a0, a1, ca) in enumerate(hs):
            for b0, b1, cb in hs[i + 1:]:
                if b0 >= a1:
                    break
                if cb != ca:
                    ov = min(a1, b1) - b0
                    max_overlap = max(max_overlap, ov)
                    overlaps.append({"lock": lock, "clients": [ca, cb],
                                     "start": b0, "overlap_s": ov})
    m = {"holds": n, "overlaps": len(overlaps), "max_overlap_s": max_overlap,
         "examples": overlaps[:5]}
    if n == 0:
        return CheckResult("lock_overlap", UNKNOWN, m, "No lock was ever acquired.")
    if overlaps:
        return CheckResult("lock_overlap", FAIL, m,
                           f"{len(overlaps)} times two clients believed they held the same "
                           f"lock at once (longest overlap {fmt_s(max_overlap)}), out of {n} holds.")
    return CheckResult("lock_overlap", PASS, m,
                       f"In {n} holds no two clients held the same lock at once.")


FENCING_DEFAULTS = {"fenced_op": "fenced_write", "lock_arg": "lock", "token_arg": "token",
                    "rejected_errors": ["fenced", "StaleTokenError", "FencingError"]}


def fencing(history: History, final_state: Mapping[str, Any],
            params: Mapping[str, Any]) -> CheckResult:
    """Count fenced rejections; fail if a stale token was accepted."""
    p = get_params("fencing", params, FENCING_DEFAULTS)
    writes = [o for o in history.ops if o.op == p["fenced_op"]]
    accepted: dict[Any, list[Op]] = defaultdict(list)
    rejected = 0
    for o in writes:
        if o.ok and value_field(o.value, "accepted", True):
            accepted[arg(o.args, p["lock_arg"])].append(o)
        elif (o.ok and not value_field(o.value, "accepted", True)) or \
                (o.error in p["rejected_errors"]):
            rejected += 1
    violations = []
    for lock, acc in accepted.items():
        by_end = sorted(acc, key=lambda o: o.end)
        ends = [x.end for x in by_end]
        top: list[Any] = []  # highest token among the first i+1 acknowledged
        for x in by_end:
            t = arg(x.args, p["token_arg"])
            top.append(t if not top or t > top[-1] else top[-1])
        for o in acc:
            k = bisect_left(ends, o.start)  # accepted writes acknowledged before o began
            tok = arg(o.args, p["token_arg"])
            if k and tok < top[k - 1]:
                violations.append({"lock": lock, "token": tok, "after_token": top[k - 1],
                                   "client": o.client, "start": o.start})
    n_acc = sum(len(v) for v in accepted.values())
    m = {"writes": len(writes), "accepted": n_acc, "fenced_rejections": rejected,
         "violations": len(violations), "examples": violations[:5]}
    if not writes:
        return CheckResult("fencing", UNKNOWN, m, "No fenced writes in the history.")
    if violations:
        return CheckResult("fencing", FAIL, m,
                           f"{len(violations)} writes with a stale fencing token were accepted "
                           f"after a newer token ({rejected} stale writes were rejected).")
    return CheckResult("fencing", PASS, m,
                       f"Storage rejected {rejected} writes with stale tokens and accepted "
                       f"none out of order ({n_acc} accepted).")
