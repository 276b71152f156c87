"""Time to detect a fault and time to recover from it.

Per fault window (from ``fault_inject``/``fault_heal`` events):

* detect: first op completing at or after inject that was not ok (or, with
  ``slow_ms``, slower than that), seconds after inject.
* first success: first ok op started at or after heal; seconds from heal to
  its completion.
* throughput recovery: seconds from heal to the start of the first 1-s
  bucket (aligned on heal) from which ok throughput stays >= ``ratio`` x
  baseline for ``stable_s`` consecutive buckets.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..history import FaultWindow, History, Op
from ..stats import baseline_throughput, time_buckets
from .base import FAIL, PASS, UNKNOWN, CheckResult, fmt_s, get_params

DETECT_DEFAULTS = {
    "slow_ms": None,       # ms; an op slower than this also counts as detection
    "max_detect_s": None,  # s; fail if detection took longer
}

RECOVER_DEFAULTS = {
    "ratio": 0.9,              # share of baseline throughput that counts as recovered
    "bucket_s": 1.0,           # s, throughput bucket width
    "stable_s": 3,             # consecutive buckets that must stay recovered
    "baseline_phase": "baseline",
    "max_recover_s": None,     # s; fail if throughput recovery took longer
}


def _detect(ops: list[Op], w: FaultWindow, slow_ms: float | None) -> Op | None:
    cands = [o for o in ops if o.end >= w.start and
             (not o.ok or (slow_ms is not None and o.latency * 1000 > slow_ms))]
    return min(cands, key=lambda o: o.end, default=None)


def time_to_detect(history: History, final_state: Mapping[str, Any],
                   params: Mapping[str, Any]) -> CheckResult:
    """Seconds from each inject to the first failed (or slow) op."""
    p = get_params("time_to_detect", params, DETECT_DEFAULTS)
    windows = history.fault_windows()
    if not windows:
        return CheckResult("time_to_detect", UNKNOWN, {},
                           "No fault was injected, so there is nothing to detect.")
    faults = []
    for w in windows:
        first = _detect(history.ops, w, p["slow_ms"])
        faults.append({"fault": w.label, "inject_t": w.start,
                       "detect_s": None if first is None else first.end - w.start,
                       "first_error": None if first is None else first.error})
    detected = [f["detect_s"] for f in faults if f["detect_s"] is not None]
    metrics = {"faults": faults, "detect_s": max(detected) if detected else None}
    parts = [f"{f['fault']}: {fmt_s(f['detect_s'])}" if f["detect_s"] is not None
             else f"{f['fault']}: clients saw no failure" for f in faults]
    text = "Time from fault to the first failed operation — " + "; ".join(parts) + "."
    lim = p["max_detect_s"]
    if lim is not None and any(d > lim for d in detected):
        return CheckResult("time_to_detect", FAIL, metrics, text + f" Limit: {fmt_s(lim)}.")
    return CheckResult("time_to_detect", PASS, metrics, text)


def _throughput_recovery(history: History, w: FaultWindow, base: float,
                         p: Mapping[str, Any]) -> float | None:
    assert w.end is not None
    sched_end = max(o.intended for o in history.ops)
    width = p["bucket_s"]
    after = [o for o in history.ops if o.end >= w.end]
    buckets = [b for b in time_buckets(after, width, start=w.end, end=sched_end, latency=False)
               if b.start + width <= sched_end + 1e-9]
    need = base * p["ratio"]
    k = int(p["stable_s"])
    for i in range(len(buckets) - k + 1):
        if all(b.throughput >= need for b in buckets[i:i + k]):
            return buckets[i].start - w.end
    return None


def time_to_recover(history: History, final_state: Mapping[str, Any],
                    params: Mapping[str, Any]) -> CheckResult:
    """Seconds from each heal to the first success and to throughput back at
    ``ratio`` x baseline. Fails if either never happens (or exceeds
    ``max_recover_s``); unknown without a healed fault or a baseline."""
    p = get_params("time_to_recover", params, RECOVER_DEFAULTS)
    windows = history.fault_windows()
    if not windows:
        return CheckResult("time_to_recover", UNKNOWN, {},
                           "No fault was injected, so there is nothing to recover from.")
    base = baseline_throughput(history, p["baseline_phase"])
    metrics: dict[str, Any] = {"baseline_throughput": base, "faults": []}
    if base is None or base <= 0:
        return CheckResult("time_to_recover", UNKNOWN, metrics,
                           "No baseline throughput to compare recovery with.")
    problems, parts = [], []
    for w in windows:
        if w.end is None:
            metrics["faults"].append({"fault": w.label, "heal_t": None})
            problems.append(f"{w.label} was never healed")
            continue
        first = min((o for o in history.ops if o.ok and o.start >= w.end),
                    key=lambda o: o.end, default=None)
        first_s = None if first is None else first.end - w.end
        thr_s = _throughput_recovery(history, w, base, p)
        metrics["faults"].append({"fault": w.label, "heal_t": w.end,
                                  "first_success_s": first_s, "throughput_s": thr_s})
        if first_s is None:
            problems.append(f"after {w.label} no operation succeeded again")
        elif thr_s is None:
            problems.append(f"after {w.label} throughput never returned to "
                            f"{p['ratio']:.0%} of baseline for {p['stable_s']} s")
        elif p["max_recover_s"] is not None and thr_s > p["max_recover_s"]:
            problems.append(f"{w.label}: recovery took {fmt_s(thr_s)} > {fmt_s(p['max_recover_s'])}")
        parts.append(f"{w.label}: first success {fmt_s(first_s)} after heal, "
                     f"throughput back to {p['ratio']:.0%} after {fmt_s(thr_s)}")
    fs = [f for f in metrics["faults"] if f.get("first_success_s") is not None]
    ts = [f["throughput_s"] for f in metrics["faults"] if f.get("throughput_s") is not None]
    metrics["first_success_s"] = max(f["first_success_s"] for f in fs) if fs else None
    metrics["recover_s"] = max(ts) if len(ts) == len(windows) else None
    text = "; ".join(parts) + "." if parts else ""
    if problems:
        return CheckResult("time_to_recover", FAIL, metrics,
                           (text + " " if text else "") + "Not recovered: " + "; ".join(problems) + ".")
    return CheckResult("time_to_recover", PASS, metrics, text)
