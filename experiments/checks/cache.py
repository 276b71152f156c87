"""Cache checks: stale reads, read-your-writes, and fallback / database load.

Stale reads are judged against the **database's commit order**, not the order
writes were launched in: each product row carries a revision that the database
increments in the transaction that changes it (``patterns.products_db``).

Writes: op ``write`` with args ``{"key": k}`` and value ``{"revision": r,
"invalidated": bool}`` (the revision the database committed; whether the
cache entry was deleted afterwards). Reads: op ``read`` with args ``{"key": k}``
and value ``{"revision": r, ...}`` (None: no such row). Every row starts at
revision 0. At a read's start, the *committed* revision of its key is the
highest revision among writes acknowledged before it; a read returning less
is stale, by ``start - ack of the first newer write`` seconds. A revision
higher than the number of writes ever attempted on the key is a phantom.

Two claims:

* ``cache_stale_reads``: no read staler than ``max_staleness_s``: the bound
  cache-aside promises even when an invalidation fails or is lost in a
  failover (the TTL with its jitter, plus the near cache's TTL);
* ``cache_read_your_writes``: in one process, a read that starts after a write
  whose invalidation was acknowledged returns that write or a newer one.

Fallback (a measurement). Reads return ``{"source": "cache"|"db"|"fallback"|"near",
"db_queries": n}``; ``fallback`` means the database answered because the cache was
unavailable. ``db_queries`` defaults to 1 for db/fallback and 0 otherwise.
Windows: before the first fault, during the faults (inject to heal), after the
heals. Amplification is a window's database queries per request divided by the
first window's.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..history import History, Op
from .base import (
    UNKNOWN,
    CheckResult,
    arg,
    fmt_pct,
    fmt_s,
    get_params,
    judged,
    measured,
    value_field,
)

STALE_DEFAULTS = {"write_op": "write", "read_op": "read", "key_arg": "key", "revision_field": "revision",
                  "max_staleness_s": 0.0}  # s of staleness tolerated (the TTL bound)
RYW_DEFAULTS = {"write_op": "write", "read_op": "read", "key_arg": "key", "revision_field": "revision"}


@dataclass
class _Acks:
    """One key's acknowledged writes, by acknowledgement time."""

    ends: list[float]
    prefix_max: list[int]  # highest revision among the first i+1 acks
    revisions: list[int]

    @classmethod
    def of(cls, acks: list[tuple[float, int]]) -> _Acks:
        acks.sort()
        pm: list[int] = []
        for _, r in acks:
            pm.append(r if not pm or r > pm[-1] else pm[-1])
        return cls([e for e, _ in acks], pm, [r for _, r in acks])

    def committed_before(self, t: float) -> tuple[int, int]:
        """(how many acks ended before ``t``, the highest revision among them; 0 if none)."""
        n = bisect_left(self.ends, t)
        return n, self.prefix_max[n - 1] if n else 0

    def first_newer(self, revision: int, n: int) -> float:
        """Ack time of the first of the first ``n`` acks with a revision above ``revision``."""
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) // 2
            if self.prefix_max[mid] > revision:
                hi = mid
            else:
                lo = mid + 1
        return self.ends[lo]


def _writes(history: History, p: Mapping[str, Any], invalidated_only: bool
            ) -> tuple[dict[Any, _Acks], dict[Any, int]]:
    """Per key: its acknowledged writes (optionally only those whose invalidation was
    acknowledged), and how many writes were attempted."""
    acks: dict[Any, list[tuple[float, int]]] = defaultdict(list)
    attempts: dict[Any, int] = defaultdict(int)
    for o in history.ops:
        if o.op != p["write_op"]:
            continue
        k = arg(o.args, p["key_arg"])
        attempts[k] += 1
        rev = value_field(o.value, p["revision_field"]) if isinstance(o.value, dict) else None
        if o.ok and rev is not None and (not invalidated_only or value_field(o.value, "invalidated", True)):
            acks[k].append((o.end, int(rev)))
    return {k: _Acks.of(v) for k, v in acks.items()}, attempts


def _reads(history: History, p: Mapping[str, Any]) -> list[tuple[Op, Any, int | None]]:
    out = []
    for o in history.ops:
        if o.op == p["read_op"] and o.ok:
            rev = value_field(o.value, p["revision_field"]) if isinstance(o.value, dict) else None
            out.append((o, arg(o.args, p["key_arg"]), None if rev is None else int(rev)))
    return out


_NOTHING = "No successful read carried a revision to judge (or no write recorded the one it committed)."


def _judgeable(history: History, p: Mapping[str, Any]) -> bool:
    """True when reads and writes carry revisions: a claim is never held on no evidence."""
    has = {p["read_op"]: False, p["write_op"]: False}
    for o in history.ops:
        if o.op in has and o.ok and isinstance(o.value, dict) and o.value.get(p["revision_field"]) is not None:
            has[o.op] = True
    return has[p["read_op"]] and (has[p["write_op"]] or not any(o.op == p["write_op"] for o in history.ops))


def cache_stale_reads(history: History, final_state: Mapping[str, Any],
                      params: Mapping[str, Any]) -> CheckResult:
    """Claim: no read staler than ``max_staleness_s``, and no phantom revision."""
    p = get_params("cache_stale_reads", params, STALE_DEFAULTS)
    claim = f"no read staler than {fmt_s(p['max_staleness_s'])} (the staleness bound cache-aside promises)"
    acks, attempts = _writes(history, p, invalidated_only=False)
    reads = stale = phantoms = 0
    max_stale = 0.0
    over: list[dict[str, Any]] = []
    for o, k, rev in _reads(history, p):
        reads += 1
        if rev is None:
            continue  # a product that does not exist: nothing to be stale about
        if rev > attempts.get(k, 0):
            phantoms += 1
            continue
        a = acks.get(k)
        if a is None:
            continue
        n, committed = a.committed_before(o.start)
        if rev >= committed:
            continue
        stale += 1
        staleness = o.start - a.first_newer(rev, n)
        max_stale = max(max_stale, staleness)
        if staleness > p["max_staleness_s"]:
            over.append({"key": k, "read_revision": rev, "committed": committed, "start": o.start,
                         "staleness_s": staleness})
    m = {"reads": reads, "stale_reads": stale, "stale_ratio": stale / reads if reads else 0.0,
         "max_staleness_s": max_stale, "bound_s": p["max_staleness_s"], "beyond_limit": len(over),
         "phantom_reads": phantoms, "examples": over[:5]}
    if reads == 0 or not _judgeable(history, p):
        return CheckResult("cache_stale_reads", UNKNOWN, m, _NOTHING, claim)
    text = (f"{stale} of {reads} reads ({fmt_pct(m['stale_ratio'])}) returned a revision older than one the "
            f"database had committed and acknowledged; maximum staleness {fmt_s(max_stale)}, "
            f"{len(over)} beyond the {fmt_s(p['max_staleness_s'])} bound.")
    if phantoms:
        text += f" {phantoms} reads returned a revision nobody wrote."
    return judged("cache_stale_reads", bool(over or phantoms), m, text, claim)


def cache_read_your_writes(history: History, final_state: Mapping[str, Any],
                           params: Mapping[str, Any]) -> CheckResult:
    """Claim: a read that starts after a write whose invalidation was acknowledged
    returns that write's revision or a newer one (one process: the scenario's)."""
    p = get_params("cache_read_your_writes", params, RYW_DEFAULTS)
    claim = "read-your-writes in one process: after a write and its invalidation return, reads see it"
    acks, _ = _writes(history, p, invalidated_only=True)
    reads = 0
    violations: list[dict[str, Any]] = []
    for o, k, rev in _reads(history, p):
        reads += 1
        a = acks.get(k)
        if a is None or rev is None:
            continue
        n, committed = a.committed_before(o.start)
        if rev < committed:
            violations.append({"key": k, "read_revision": rev, "written": committed, "start": o.start,
                               "after_s": o.start - a.first_newer(rev, n), "source": value_field(o.value, "source")})
    by_source: dict[str, int] = defaultdict(int)
    for v in violations:
        by_source[str(v["source"])] += 1
    m = {"reads": reads, "violations": len(violations), "by_source": dict(by_source), "examples": violations[:5]}
    if reads == 0 or not _judgeable(history, p):
        return CheckResult("cache_read_your_writes", UNKNOWN, m, _NOTHING, claim)
    if violations:
        where = ", ".join(f"{n} from {s}" for s, n in sorted(by_source.items()))
        return judged("cache_read_your_writes", True, m,
                      f"{len(violations)} of {reads} reads returned an older revision after the write and its "
                      f"invalidation had returned ({where}).", claim)
    return judged("cache_read_your_writes", False, m,
                  f"All {reads} reads saw every write whose invalidation had returned before them.", claim)


BASELINE = "before the fault"
FALLBACK_DEFAULTS = {"read_op": "read",
                     "max_amplification": None,   # x baseline db queries/request
                     "max_fallback_ratio": None}  # share of requests


def _source(o: Op) -> str:
    return str(value_field(o.value, "source", "cache") if isinstance(o.value, dict) else "cache")


def _db_queries(o: Op) -> float:
    src = _source(o)
    default = 0 if src == "cache" else 1
    return float(value_field(o.value, "db_queries", default) if isinstance(o.value, dict) else default)


def cache_fallback(history: History, final_state: Mapping[str, Any],
                   params: Mapping[str, Any]) -> CheckResult:
    """Per phase: fallback ratio, db queries per request, and amplification versus
    the baseline phase. A measurement; a claim when a limit is given."""
    p = get_params("cache_fallback", params, FALLBACK_DEFAULTS)
    limited = p["max_amplification"] is not None or p["max_fallback_ratio"] is not None
    claim = "database load within " + ", ".join(
        x for x in (f"{p['max_amplification']}x the baseline" if p["max_amplification"] is not None else "",
                    f"{fmt_pct(p['max_fallback_ratio'])} fallbacks" if p["max_fallback_ratio"] is not None else "")
        if x)
    windows = [(BASELINE, history.before_faults())]
    for c in history.cycles():
        windows += [("during the fault", history.during(c)), ("after the heal", history.after(c))]
    groups: dict[str, list[Op]] = defaultdict(list)
    for name, ops in windows:
        groups[name] += [o for o in ops if o.op == p["read_op"]]
    groups = defaultdict(list, {k: v for k, v in groups.items() if v})
    if not groups:
        if limited:
            return CheckResult("cache_fallback", UNKNOWN, {}, "No read requests in the history.", claim)
        return measured("cache_fallback", {}, "No read requests in the history.")
    per: dict[str, dict[str, Any]] = {}
    for name, ops in groups.items():
        ok = [o for o in ops if o.ok]
        per[name] = {"requests": len(ops), "failed": len(ops) - len(ok),
                     "fallback_ratio": sum(_source(o) == "fallback" for o in ok) / len(ops),
                     "db_per_request": sum(_db_queries(o) for o in ok) / len(ops)}
    base_name = BASELINE if BASELINE in per else next(iter(per))
    base = per[base_name]["db_per_request"]
    for s in per.values():
        s["amplification"] = (s["db_per_request"] / base) if base > 0 else None
    worst_amp = max((s["amplification"] for s in per.values() if s["amplification"] is not None),
                    default=None)
    worst_fb = max(s["fallback_ratio"] for s in per.values())
    m = {"per_window": per, "baseline_window": base_name, "max_amplification": worst_amp,
         "max_fallback_ratio": worst_fb}
    amp_txt = f"{worst_amp:.1f}x" if worst_amp is not None else "n/a (no db load at baseline)"
    text = (f"Up to {fmt_pct(worst_fb)} of read requests in a window were served by the database "
            f"fallback; database load peaked at {amp_txt} the level {base_name}.")
    bad = []
    if p["max_amplification"] is not None and ((worst_amp is None and any(
            s["db_per_request"] > 0 for s in per.values())) or
            (worst_amp or 0) > p["max_amplification"]):
        bad.append(f"amplification above {p['max_amplification']}x")
    if p["max_fallback_ratio"] is not None and worst_fb > p["max_fallback_ratio"]:
        bad.append(f"fallback ratio above {fmt_pct(p['max_fallback_ratio'])}")
    if not limited:
        return measured("cache_fallback", m, text)
    return judged("cache_fallback", bool(bad), m, text + (" Limit exceeded: " + ", ".join(bad) + "." if bad else ""),
                  claim)
