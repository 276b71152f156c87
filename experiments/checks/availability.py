"""Steady-state hypothesis (availability and latency per phase) and errors
by type."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Mapping

from ..history import History, Op
from ..stats import phase_order, summarize
from .base import FAIL, PASS, UNKNOWN, CheckResult, fmt_pct, get_params

STEADY_DEFAULTS = {
    "availability_min": 0.99,  # share of ops with outcome ok
    "p99_max_ms": 50.0,        # ms, latency from intended start
    "phases": None,            # phase names to judge; None = phases untouched by faults
    "grace_s": 0.0,            # s after each heal excluded from judgement
}


def _in_fault(o: Op, windows: list[tuple[float, float]]) -> bool:
    return any(a <= o.intended < b for a, b in windows)


def steady_state(history: History, final_state: Mapping[str, Any],
                 params: Mapping[str, Any]) -> CheckResult:
    """Availability >= ``availability_min`` and p99 <= ``p99_max_ms`` in every
    judged phase. By default a phase is judged when at least half its ops
    were intended outside every fault window, and only those ops count
    (phase boundaries and fault events never line up exactly). With
    ``phases`` given, exactly those phases are judged on all their ops. Ops
    intended within ``grace_s`` after a heal are ignored in judged phases.
    Metrics hold every phase's figures, judged or not."""
    p = get_params("steady_state", params, STEADY_DEFAULTS)
    faults = [(w.start, w.end if w.end is not None else float("inf"))
              for w in history.fault_windows()]
    graces = [(w.end, w.end + p["grace_s"]) for w in history.fault_windows()
              if w.end is not None and p["grace_s"] > 0]
    groups: dict[str, list[Op]] = {n: [] for n in phase_order(history)}
    for o in history.ops:
        groups.setdefault(o.phase or "-", []).append(o)
    per_phase: dict[str, Any] = {}
    violations: list[str] = []
    judged_any = False
    for name, ops in groups.items():
        if not ops:
            continue
        outside = [o for o in ops if not _in_fault(o, faults)]
        touched = len(outside) < len(ops)
        if p["phases"] is not None:
            judged, kept = name in p["phases"], ops
        else:  # mostly outside the fault: judge its ops outside the fault
            judged, kept = len(outside) * 2 >= len(ops), outside
        kept = [o for o in kept if not _in_fault(o, graces)]
        if not judged:
            kept = ops
        s = summarize(kept).to_json()
        s["judged"] = judged and bool(kept)
        s["fault_overlap"] = touched
        per_phase[name] = s
        if not s["judged"]:
            continue
        judged_any = True
        if s["availability"] is not None and s["availability"] < p["availability_min"]:
            violations.append(f"{name}: availability {fmt_pct(s['availability'])} "
                              f"< {fmt_pct(p['availability_min'])}")
        if s["p99_ms"] is not None and s["p99_ms"] > p["p99_max_ms"]:
            violations.append(f"{name}: p99 {s['p99_ms']:.1f} ms > {p['p99_max_ms']:g} ms")
    metrics = {"per_phase": per_phase, "hypothesis": {
        "availability_min": p["availability_min"], "p99_max_ms": p["p99_max_ms"]},
        "violations": violations}
    hyp = (f"availability >= {fmt_pct(p['availability_min'])} and "
           f"p99 <= {p['p99_max_ms']:g} ms")
    if not judged_any:
        return CheckResult("steady_state", UNKNOWN, metrics,
                           f"No operations outside the fault window to test '{hyp}' on.")
    judged = [n for n, s in per_phase.items() if s["judged"]]
    if violations:
        return CheckResult("steady_state", FAIL, metrics,
                           f"Steady state ({hyp}) did not hold: " + "; ".join(violations) + ".")
    return CheckResult("steady_state", PASS, metrics,
                       f"Steady state ({hyp}) held in {', '.join(judged)}.")


ERRORS_DEFAULTS = {
    "allowed": None,  # error types that may appear; None = any (informational)
}


def errors_by_type(history: History, final_state: Mapping[str, Any],
                   params: Mapping[str, Any]) -> CheckResult:
    """Counts of non-ok ops by error type, overall and per phase. Fails only
    when ``allowed`` is given and another error type appears."""
    p = get_params("errors_by_type", params, ERRORS_DEFAULTS)
    by_type: Counter[str] = Counter()
    by_outcome: dict[str, Counter[str]] = defaultdict(Counter)
    by_phase: dict[str, Counter[str]] = defaultdict(Counter)
    for o in history.ops:
        if o.ok:
            continue
        err = o.error or "(none)"
        by_type[err] += 1
        by_outcome[o.outcome][err] += 1
        by_phase[o.phase or "-"][err] += 1
    metrics = {"by_type": dict(by_type.most_common()),
               "by_outcome": {k: dict(v) for k, v in by_outcome.items()},
               "by_phase": {k: dict(v) for k, v in by_phase.items()},
               "non_ok": sum(by_type.values()), "ops": len(history.ops)}
    if not by_type:
        return CheckResult("errors_by_type", PASS, metrics, "No operation failed.")
    listing = ", ".join(f"{k} x{v}" for k, v in by_type.most_common(5))
    text = f"{metrics['non_ok']} of {len(history.ops)} operations were not ok: {listing}."
    if p["allowed"] is not None:
        bad = sorted(set(by_type) - set(p["allowed"]))
        metrics["unexpected"] = bad
        if bad:
            return CheckResult("errors_by_type", FAIL, metrics,
                               text + f" Unexpected error types: {', '.join(bad)}.")
    return CheckResult("errors_by_type", PASS, metrics, text)


SEND_LAG_DEFAULTS = {"max_p99_ms": 10.0}  # ms of p99 send lag tolerated


def send_lag(history: History, final_state: Mapping[str, Any],
             params: Mapping[str, Any]) -> CheckResult:
    """Health of the load generator itself: if ops started much later than
    intended (p99 send lag above ``max_p99_ms``), the figures measure the
    generator, not Redis, so the verdict is ``unknown`` (never ``fail``)."""
    p = get_params("send_lag", params, SEND_LAG_DEFAULTS)
    lags = sorted(o.send_lag for o in history.ops if o.error != "overload")
    if not lags:
        return CheckResult("send_lag", UNKNOWN, {}, "No launched operations.")
    p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))] * 1000
    m = {"send_lag_p99_ms": p99, "send_lag_max_ms": lags[-1] * 1000,
         "max_p99_ms": p["max_p99_ms"]}
    if p99 > p["max_p99_ms"]:
        return CheckResult("send_lag", UNKNOWN, m,
                           f"The load generator fell behind (p99 send lag {p99:.1f} ms > "
                           f"{p['max_p99_ms']:g} ms): latency figures are not trustworthy.")
    return CheckResult("send_lag", PASS, m,
                       f"The load generator kept its schedule (p99 send lag {p99:.2f} ms).")
