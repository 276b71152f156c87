"""Cache checks: stale reads, and fallback / database load amplification.

Stale reads. Writes: op ``write`` with args ``{"key": k, "version": v}``
(versions increase per key). Reads: op ``read`` with args ``{"key": k}`` and
value ``{"version": v, ...}`` (or the bare version; None = no data). A read
is stale when it returns a version older than the newest version whose write
was acknowledged before the read started. Its staleness is the read's start
minus the acknowledgement of the first newer version (seconds). Final state
``initial_versions`` ({key: version}) names the versions present before the run;
any other version never written is a phantom read.

Fallback. Reads return ``{"source": "cache"|"db"|"fallback", "db_queries": n}``;
``fallback`` means the database answered because the cache was unavailable.
``db_queries`` defaults to 1 for db/fallback and 0 for cache. Amplification is
a phase's database queries per request divided by the baseline phase's.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from typing import Any, Mapping

from ..history import History, Op
from .base import (
    FAIL,
    PASS,
    UNKNOWN,
    CheckResult,
    arg,
    fmt_pct,
    fmt_s,
    get_params,
    value_field,
)

STALE_DEFAULTS = {"write_op": "write", "read_op": "read", "key_arg": "key",
                  "version_arg": "version",
                  "initial_key": "initial_versions",  # final-state {key: version} present before the run
                  "max_staleness_s": 0.0}  # s of staleness tolerated (e.g. the TTL)


def cache_stale_reads(history: History, final_state: Mapping[str, Any],
                      params: Mapping[str, Any]) -> CheckResult:
    """Count stale reads and the maximum staleness; fail if any read was
    staler than ``max_staleness_s`` or returned a version never written."""
    p = get_params("cache_stale_reads", params, STALE_DEFAULTS)
    acks: dict[Any, list[tuple[float, Any]]] = defaultdict(list)  # key -> (end, version)
    attempted: dict[Any, set[Any]] = defaultdict(set)
    for k, v in (final_state.get(p["initial_key"]) or {}).items():
        attempted[k].add(v)  # the data set the run started from was written, before t0
    for o in history.ops:
        if o.op == p["write_op"]:
            k, v = arg(o.args, p["key_arg"]), arg(o.args, p["version_arg"])
            attempted[k].add(v)
            if o.ok:
                acks[k].append((o.end, v))
    ends: dict[Any, list[float]] = {}
    prefix_max: dict[Any, list[Any]] = {}  # max acked version among the first i+1 acks
    for k, lst in acks.items():
        lst.sort(key=lambda x: x[0])
        ends[k] = [e for e, _ in lst]
        pm: list[Any] = []
        for _, v in lst:
            pm.append(v if not pm or v > pm[-1] else pm[-1])
        prefix_max[k] = pm
    reads = stale = phantoms = 0
    max_stale = 0.0
    over: list[dict[str, Any]] = []
    for o in history.ops:
        if o.op != p["read_op"] or not o.ok:
            continue
        k = arg(o.args, p["key_arg"])
        v = value_field(o.value, p["version_arg"])
        reads += 1
        if v is not None and v not in attempted.get(k, ()):
            phantoms += 1
            continue
        n_before = bisect_left(ends.get(k, []), o.start)  # acks ended before the read
        if n_before == 0:
            continue
        pm = prefix_max[k]
        if v is None:
            j = 0
        elif pm[n_before - 1] > v:
            j = _first_greater(pm, v, n_before)
        else:
            continue
        first_newer_ack = ends[k][j]
        stale += 1
        staleness = o.start - first_newer_ack
        max_stale = max(max_stale, staleness)
        if staleness > p["max_staleness_s"]:
            over.append({"key": k, "read_version": v, "start": o.start,
                         "staleness_s": staleness})
    m = {"reads": reads, "stale_reads": stale,
         "stale_ratio": stale / reads if reads else 0.0,
         "max_staleness_s": max_stale, "beyond_limit": len(over),
         "phantom_reads": phantoms, "examples": over[:5]}
    if reads == 0:
        return CheckResult("cache_stale_reads", UNKNOWN, m, "No successful reads to judge.")
    text = (f"{stale} of {reads} reads ({fmt_pct(m['stale_ratio'])}) returned data older "
            f"than an acknowledged write; maximum staleness {fmt_s(max_stale)} "
            f"(tolerated: {fmt_s(p['max_staleness_s'])}).")
    if phantoms:
        text += f" {phantoms} reads returned a version nobody wrote."
    return CheckResult("cache_stale_reads", FAIL if over or phantoms else PASS, m, text)


FALLBACK_DEFAULTS = {"read_op": "read", "baseline_phase": "baseline",
                     "max_amplification": None,   # x baseline db queries/request
                     "max_fallback_ratio": None}  # share of requests


def _first_greater(pm: list[Any], v: Any, hi: int) -> int:
    """First index < hi with pm[i] > v (pm is non-decreasing)."""
    lo = 0
    while lo < hi:
        mid = (lo + hi) // 2
        if pm[mid] > v:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _source(o: Op) -> str:
    return str(value_field(o.value, "source", "cache") if isinstance(o.value, dict) else "cache")


def _db_queries(o: Op) -> float:
    src = _source(o)
    default = 0 if src == "cache" else 1
    return float(value_field(o.value, "db_queries", default) if isinstance(o.value, dict) else default)


def cache_fallback(history: History, final_state: Mapping[str, Any],
                   params: Mapping[str, Any]) -> CheckResult:
    """Per phase: fallback ratio, db queries per request, and amplification
    versus the baseline phase."""
    p = get_params("cache_fallback", params, FALLBACK_DEFAULTS)
    groups: dict[str, list[Op]] = defaultdict(list)
    for o in history.ops:
        if o.op == p["read_op"]:
            groups[o.phase or "-"].append(o)
    if not groups:
        return CheckResult("cache_fallback", UNKNOWN, {}, "No read requests in the history.")
    per: dict[str, dict[str, Any]] = {}
    for name, ops in groups.items():
        ok = [o for o in ops if o.ok]
        per[name] = {"requests": len(ops), "failed": len(ops) - len(ok),
                     "fallback_ratio": sum(_source(o) == "fallback" for o in ok) / len(ops),
                     "db_per_request": sum(_db_queries(o) for o in ok) / len(ops)}
    base_name = p["baseline_phase"] if p["baseline_phase"] in per else next(iter(per))
    base = per[base_name]["db_per_request"]
    for s in per.values():
        s["amplification"] = (s["db_per_request"] / base) if base > 0 else None
    worst_amp = max((s["amplification"] for s in per.values() if s["amplification"] is not None),
                    default=None)
    worst_fb = max(s["fallback_ratio"] for s in per.values())
    m = {"per_phase": per, "baseline_phase": base_name, "max_amplification": worst_amp,
         "max_fallback_ratio": worst_fb}
    amp_txt = f"{worst_amp:.1f}x" if worst_amp is not None else "n/a (no db load at baseline)"
    text = (f"Up to {fmt_pct(worst_fb)} of requests in a phase were served by the database "
            f"fallback; database load peaked at {amp_txt} the {base_name} level.")
    bad = []
    if p["max_amplification"] is not None and (worst_amp is None and any(
            s["db_per_request"] > 0 for s in per.values()) or
            (worst_amp or 0) > p["max_amplification"]):
        bad.append(f"amplification above {p['max_amplification']}x")
    if p["max_fallback_ratio"] is not None and worst_fb > p["max_fallback_ratio"]:
        bad.append(f"fallback ratio above {fmt_pct(p['max_fallback_ratio'])}")
    if bad:
        return CheckResult("cache_fallback", FAIL, m, text + " Limit exceeded: " + ", ".join(bad) + ".")
    return CheckResult("cache_fallback", PASS, m, text)
