"""Time to detect a fault and time to recover from it, per fault cycle, over the
workload's own operations (``History.workload``).

* detect (a measurement): first workload op completing at or after the inject,
  before the heal, that was not ok (or, with ``slow_ms``, slower than that);
  seconds after the inject.
* recover (a claim: "the service recovers after each heal"): first ok op started
  at or after the heal (seconds from the heal to its completion), and the start
  of the first 1-s bucket (aligned on the heal) from which ok throughput stays
  >= ``ratio`` x the baseline for ``stable_s`` consecutive buckets, before the
  next fault or the end of the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..history import Cycle, History, Op
from ..stats import Spread, baseline_throughput, time_buckets
from .base import UNKNOWN, CheckResult, fmt_s, get_params, judged, measured

DETECT_DEFAULTS = {
    "slow_ms": None,       # ms; an op slower than this also counts as detection
    "max_detect_s": None,  # s; makes it a claim: fail if detection took longer
}

RECOVER_DEFAULTS = {
    "ratio": 0.9,              # share of baseline throughput that counts as recovered
    "bucket_s": 1.0,           # s, throughput bucket width
    "stable_s": 3,             # consecutive buckets that must stay recovered
    "max_recover_s": None,     # s; fail if throughput recovery took longer
}


def _detect(ops: list[Op], c: Cycle, slow_ms: float | None) -> Op | None:
    cands = [o for o in ops if c.start <= o.end and o.intended < c.heal and
             (not o.ok or (slow_ms is not None and o.latency * 1000 > slow_ms))]
    return min(cands, key=lambda o: o.end, default=None)


def time_to_detect(history: History, final_state: Mapping[str, Any],
                   params: Mapping[str, Any]) -> CheckResult:
    """Seconds from each inject to the first failed (or slow) workload op."""
    p = get_params("time_to_detect", params, DETECT_DEFAULTS)
    cycles = history.cycles()
    if not cycles:
        return measured("time_to_detect", {}, "No fault was injected, so there is nothing to detect.")
    ops = history.workload
    faults: list[dict[str, Any]] = []
    for c in cycles:
        first = _detect(ops, c, p["slow_ms"])
        faults.append({"cycle": c.index, "fault": c.fault.label, "inject_t": c.start,
                       "detect_s": None if first is None else first.end - c.start,
                       "first_error": None if first is None else first.error})
    spread = Spread.of(f["detect_s"] for f in faults)
    metrics = {"faults": faults, "detect_s": spread.median, "spread": spread.to_json()}
    parts = [f"cycle {f['cycle']}: {fmt_s(f['detect_s'])}" if f["detect_s"] is not None
             else f"cycle {f['cycle']}: clients saw no failure" for f in faults]
    text = "Time from the fault to the first failed operation: " + "; ".join(parts) + "."
    lim = p["max_detect_s"]
    if lim is None:
        return measured("time_to_detect", metrics, text)
    late = any(f["detect_s"] is not None and f["detect_s"] > lim for f in faults)
    return judged("time_to_detect", late, metrics, text + f" Limit: {fmt_s(lim)}.",
                  f"clients see the fault within {fmt_s(lim)}")


def _throughput_recovery(ops: list[Op], c: Cycle, base: float, p: Mapping[str, Any]) -> float | None:
    width = p["bucket_s"]
    sched_end = max((o.intended for o in ops if o.intended < c.next), default=c.heal)
    after = [o for o in ops if o.end >= c.heal and o.intended < c.next]
    buckets = [b for b in time_buckets(after, width, start=c.heal, end=sched_end, latency=False)
               if b.start + width <= sched_end + 1e-9]
    need = base * p["ratio"]
    k = int(p["stable_s"])
    for i in range(len(buckets) - k + 1):
        if all(b.throughput >= need for b in buckets[i:i + k]):
            return buckets[i].start - c.heal
    return None


def time_to_recover(history: History, final_state: Mapping[str, Any],
                    params: Mapping[str, Any]) -> CheckResult:
    """Claim: after each heal a request succeeds again and throughput returns to
    ``ratio`` x the baseline before the next fault (within ``max_recover_s`` if given).
    Unknown without a healed fault or a baseline."""
    p = get_params("time_to_recover", params, RECOVER_DEFAULTS)
    claim = (f"recovers after each heal: throughput back to {p['ratio']:.0%} of the baseline for "
             f"{p['stable_s']} s" + (f" within {fmt_s(p['max_recover_s'])}" if p["max_recover_s"] else ""))
    cycles = history.cycles()
    if not cycles:
        return CheckResult("time_to_recover", UNKNOWN, {},
                           "No fault was injected, so there is nothing to recover from.", claim)
    base = baseline_throughput(history)
    metrics: dict[str, Any] = {"baseline_throughput": base, "faults": []}
    if base is None or base <= 0:
        return CheckResult("time_to_recover", UNKNOWN, metrics,
                           "No baseline throughput to compare recovery with.", claim)
    ops = history.workload
    problems, parts = [], []
    for c in cycles:
        if c.fault.end is None:
            metrics["faults"].append({"cycle": c.index, "fault": c.fault.label, "heal_t": None})
            problems.append(f"cycle {c.index}: the fault was never healed")
            continue
        first = min((o for o in ops if o.ok and c.heal <= o.start < c.next), key=lambda o: o.end, default=None)
        first_s = None if first is None else first.end - c.heal
        thr_s = _throughput_recovery(ops, c, base, p)
        metrics["faults"].append({"cycle": c.index, "fault": c.fault.label, "heal_t": c.heal,
                                  "first_success_s": first_s, "throughput_s": thr_s})
        if first_s is None:
            problems.append(f"cycle {c.index}: no operation succeeded again")
        elif thr_s is None:
            problems.append(f"cycle {c.index}: throughput never returned to {p['ratio']:.0%} of the baseline "
                            f"for {p['stable_s']} s")
        elif p["max_recover_s"] is not None and thr_s > p["max_recover_s"]:
            problems.append(f"cycle {c.index}: recovery took {fmt_s(thr_s)} > {fmt_s(p['max_recover_s'])}")
        parts.append(f"cycle {c.index}: first success {fmt_s(first_s)} after the heal, throughput back "
                     f"after {fmt_s(thr_s)}")
    first_spread = Spread.of(f.get("first_success_s") for f in metrics["faults"])
    thr_spread = Spread.of(f.get("throughput_s") for f in metrics["faults"])
    metrics.update(first_success_s=first_spread.median, first_success_spread=first_spread.to_json(),
                   recover_s=thr_spread.median if thr_spread.n == len(cycles) else None,
                   recover_spread=thr_spread.to_json())
    text = "; ".join(parts) + "." if parts else ""
    if problems:
        return judged("time_to_recover", True, metrics,
                      (text + " " if text else "") + "Not recovered: " + "; ".join(problems) + ".", claim)
    return judged("time_to_recover", False, metrics, text, claim)
