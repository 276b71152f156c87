"""Lock checks: overlapping holders and fencing.

Holds. Ops ``acquire`` (args ``{"lock": name, "ttl_s": t?}``) and ``release``
(args ``{"lock": name}``), per client. A client believes it holds the lock
from the end of an ok acquire to the start of its next release of that lock
(or, without one, to acquire end + ``ttl_s``, or to the end of the history).
Two clients' holds of one lock that overlap are a violation: both ran their
critical section at once.

Fencing. Op ``fenced_write`` (args ``{"lock": name, "token": n, "holder": h}``)
is accepted when ok with a truthy value (or ``value["accepted"]``); rejected
when ok with a falsy value or failed with an error in ``rejected_errors``. A
violation is an accepted write whose token is lower than a token already
accepted (by a write acknowledged before it started), or equal to it from
another holder. A token handed to two holders is a **fence reuse** (the fence
counter went back, e.g. an INCR lost in a failover): always reported, and a
violation when storage accepted both. Final state ``fence_counters``
({lock: value read after the run}) tells whether the fence source itself went
back (below the highest token already handed out).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ..history import History, Op
from .base import UNKNOWN, CheckResult, arg, fmt_s, get_params, judged, value_field

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
    """Claim: no two clients' holds of the same lock overlap in time."""
    p = get_params("lock_overlap", params, OVERLAP_DEFAULTS)
    claim = "at most one holder of a lock at a time"
    holds = lock_holds(history, p)
    overlaps: list[dict[str, Any]] = []
    max_overlap = 0.0
    n = 0
    for lock, hs in holds.items():
        hs.sort()
        n += len(hs)
        for i, (_a0, a1, ca) in enumerate(hs):
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
        return CheckResult("lock_overlap", UNKNOWN, m, "No lock was ever acquired.", claim)
    if overlaps:
        return judged("lock_overlap", True, m,
                      f"{len(overlaps)} times two clients believed they held the same "
                      f"lock at once (longest overlap {fmt_s(max_overlap)}), out of {n} holds.", claim)
    return judged("lock_overlap", False, m, f"In {n} holds no two clients held the same lock at once.", claim)


FENCING_DEFAULTS = {"fenced_op": "fenced_write", "lock_arg": "lock", "token_arg": "token", "holder_arg": "holder",
                    "counters_key": "fence_counters",
                    "rejected_errors": ["fenced", "StaleTokenError", "FencingError"]}


def fencing(history: History, final_state: Mapping[str, Any],
            params: Mapping[str, Any]) -> CheckResult:
    """Claim: storage accepts no write with a stale or reused fencing token."""
    p = get_params("fencing", params, FENCING_DEFAULTS)
    claim = "storage accepts no write with a stale or reused fencing token"
    writes = [o for o in history.ops if o.op == p["fenced_op"]]
    accepted: dict[Any, list[Op]] = defaultdict(list)
    holders: dict[tuple[Any, Any], set[Any]] = defaultdict(set)  # (lock, token) -> holders that wrote with it
    rejected = 0
    for o in writes:
        holders[(arg(o.args, p["lock_arg"]), arg(o.args, p["token_arg"]))].add(arg(o.args, p["holder_arg"]))
        if o.ok and value_field(o.value, "accepted", True):
            accepted[arg(o.args, p["lock_arg"])].append(o)
        elif (o.ok and not value_field(o.value, "accepted", True)) or \
                (o.error in p["rejected_errors"]):
            rejected += 1
    reused = sorted((lock, tok) for (lock, tok), hs in holders.items() if len(hs) > 1)
    violations = []
    for lock, acc in accepted.items():
        by_end = sorted(acc, key=lambda o: o.end)
        ends = [x.end for x in by_end]
        top: list[Op] = []  # the write with the highest token among the first i+1 acknowledged
        for x in by_end:
            better = not top or arg(x.args, p["token_arg"]) > arg(top[-1].args, p["token_arg"])
            top.append(x if better else top[-1])
        for o in acc:
            k = bisect_left(ends, o.start)  # accepted writes acknowledged before o began
            if not k:
                continue
            tok, best = arg(o.args, p["token_arg"]), top[k - 1]
            best_tok = arg(best.args, p["token_arg"])
            other = arg(o.args, p["holder_arg"]) != arg(best.args, p["holder_arg"])
            if tok < best_tok or (tok == best_tok and other):
                violations.append({"lock": lock, "token": tok, "after_token": best_tok, "reused": tok == best_tok,
                                   "client": o.client, "start": o.start})
    issued: dict[Any, Any] = {}
    for (lock, tok) in holders:
        if tok is not None and (lock not in issued or tok > issued[lock]):
            issued[lock] = tok
    counters = final_state.get(p["counters_key"])
    regressed = None if counters is None else sorted(
        str(lock) for lock, hi in issued.items() if str(lock) in counters and int(counters[str(lock)] or 0) < hi)
    n_acc = sum(len(v) for v in accepted.values())
    m = {"writes": len(writes), "accepted": n_acc, "fenced_rejections": rejected,
         "violations": len(violations), "examples": violations[:5],
         "fence_reuses": len(reused), "reused_examples": [list(x) for x in reused[:5]],
         "fence_source_regressed": regressed}
    if not writes:
        return CheckResult("fencing", UNKNOWN, m, "No fenced writes in the history.", claim)
    source = ("" if regressed is None else
              f" The fence counter went back below tokens already issued for {len(regressed)} lock(s): "
              "the fence source did not survive the failover." if regressed else
              " The fence counters never went back below a token already issued.")
    reuse = (f" {len(reused)} fencing token(s) were handed to two holders (fence reused)." if reused else "")
    if violations:
        n_reused = sum(v["reused"] for v in violations)
        return judged("fencing", True, m,
                      f"{len(violations)} writes with a stale or reused fencing token were accepted "
                      f"({n_reused} reused); {rejected} stale writes were rejected." + reuse + source, claim)
    return judged("fencing", False, m,
                  f"Storage rejected {rejected} writes with stale or reused tokens and accepted "
                  f"none out of order ({n_acc} accepted)." + reuse + source, claim)
