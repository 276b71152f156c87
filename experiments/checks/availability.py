"""The steady-state hypothesis (outside and, where the design promises it, during
the fault), errors by type, and the load generator's own health.

All of them look at the workload's own operations after the warm-up
(``History.workload``): never lock steps or worker records. "During the fault"
is one window per cycle, from the fault's inject event to its heal event
(``History.cycles``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from ..history import History, Op
from ..stats import dropped, summarize
from .base import UNKNOWN, CheckResult, fmt_pct, get_params, judged, measured

STEADY_DEFAULTS = {
    "availability_min": 0.99,  # share of ops with outcome ok
    "p99_max_ms": 50.0,        # ms, latency of successful ops from intended start
    "grace_s": 0.0,            # s after each heal excluded from judgement
}


def _slo_text(p: Mapping[str, Any]) -> str:
    return f"availability >= {fmt_pct(p['availability_min'])} and p99 <= {p['p99_max_ms']:g} ms"


def _p99_ms(values_s: list[float]) -> float:
    """The 99th percentile of ``values_s`` (s, not empty), in ms (nearest rank below)."""
    values = sorted(values_s)
    return values[min(len(values) - 1, int(0.99 * len(values)))] * 1000


def _judge(segments: dict[str, list[Op]], p: Mapping[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """Summaries of each non-empty segment, the SLO violations among them, and the p99 excesses
    that cannot be judged: the segment's p99 from intended start is over the SLO, the p99 from
    the actual send is not, and the generator's own p99 send lag in the segment exceeds
    ``send_lag``'s bound: the excess is the generator's delay, not
    Redis's. Availability is judged whatever the lag (a late request still got its answer)."""
    bound = SEND_LAG_DEFAULTS["max_p99_ms"]
    per: dict[str, Any] = {}
    violations: list[str] = []
    undecided: list[str] = []
    for name, ops in segments.items():
        if not ops:
            continue
        s = summarize(ops).to_json()
        per[name] = s
        if s["availability"] is not None and s["availability"] < p["availability_min"]:
            violations.append(f"{name}: availability {fmt_pct(s['availability'])} < {fmt_pct(p['availability_min'])}")
        if s["p99_ms"] is not None and s["p99_ms"] > p["p99_max_ms"]:
            excess = f"{name}: p99 {s['p99_ms']:.1f} ms > {p['p99_max_ms']:g} ms"
            sent = [o for o in ops if not dropped(o)]
            lag_p99 = _p99_ms([o.send_lag for o in sent]) if sent else 0.0
            ok = [o for o in ops if o.ok]
            service_p99 = _p99_ms([o.end - o.start for o in ok]) if ok else 0.0
            s["send_lag_p99_ms"], s["p99_from_send_ms"] = round(lag_p99, 3), round(service_p99, 3)
            if lag_p99 > bound and service_p99 <= p["p99_max_ms"]:
                undecided.append(f"{excess} only counted from the intended start: from the actual send p99 is "
                                 f"{service_p99:.1f} ms, and the load generator fell behind in it (p99 send lag "
                                 f"{lag_p99:.1f} ms > {bound:g} ms)")
            else:
                violations.append(excess)
    return per, violations, undecided


def _verdict(name: str, claim: str, metrics: dict[str, Any], violations: list[str], undecided: list[str],
             held: str) -> CheckResult:
    """Violated on any violation; else undecided when an excess was the generator's; else held."""
    metrics["undecided"] = undecided
    if violations:
        return judged(name, True, metrics, "Did not hold: " + "; ".join(violations) + ".", claim)
    if undecided:
        return CheckResult(name, UNKNOWN, metrics, "Undecided: " + "; ".join(undecided) + ".", claim)
    return judged(name, False, metrics, held, claim)


def steady_state(history: History, final_state: Mapping[str, Any],
                 params: Mapping[str, Any]) -> CheckResult:
    """Claim: before the first fault, and after each heal (less ``grace_s``) until the
    next fault, availability >= ``availability_min`` and p99 <= ``p99_max_ms``."""
    p = get_params("steady_state", params, STEADY_DEFAULTS)
    claim = f"steady state outside the fault: {_slo_text(p)} before the fault and after each heal"
    segments: dict[str, list[Op]] = {"before the fault": history.before_faults()}
    for c in history.cycles():
        if c.fault.end is not None:
            segments[f"after heal {c.index}"] = [o for o in history.after(c) if o.intended >= c.heal + p["grace_s"]]
    per, violations, undecided = _judge(segments, p)
    metrics = {"per_segment": per, "hypothesis": {"availability_min": p["availability_min"],
                                                  "p99_max_ms": p["p99_max_ms"], "grace_s": p["grace_s"]},
               "violations": violations}
    if not per:
        return CheckResult("steady_state", UNKNOWN, metrics, "No operations outside the fault window to judge.",
                           claim)
    return _verdict("steady_state", claim, metrics, violations, undecided, f"Held in {', '.join(per)}.")


DURING_DEFAULTS = {"availability_min": 0.99, "p99_max_ms": 50.0}


def during_fault(history: History, final_state: Mapping[str, Any],
                 params: Mapping[str, Any]) -> CheckResult:
    """Claim, for designs that promise to keep serving through the fault (a fallback,
    a breaker): in every fault window, availability and p99 within the SLO."""
    p = get_params("during_fault", params, DURING_DEFAULTS)
    claim = f"served through the fault: {_slo_text(p)} in every fault window"
    segments = {f"fault {c.index}": history.during(c) for c in history.cycles()}
    per, violations, undecided = _judge(segments, p)
    metrics = {"per_cycle": per, "violations": violations}
    if not per:
        return CheckResult("during_fault", UNKNOWN, metrics, "No operation was intended during a fault.", claim)
    return _verdict("during_fault", claim, metrics, violations, undecided, f"Held in {', '.join(per)}.")


ERRORS_DEFAULTS = {
    "allowed": None,  # error types that may appear; None = a measurement only
}


def errors_by_type(history: History, final_state: Mapping[str, Any],
                   params: Mapping[str, Any]) -> CheckResult:
    """Counts of non-ok workload ops by error type, overall, by outcome and by window
    (during a fault / outside). A measurement; a claim only when ``allowed`` is given
    ("no error type outside ``allowed``")."""
    p = get_params("errors_by_type", params, ERRORS_DEFAULTS)
    in_fault = {id(o) for c in history.cycles() for o in history.during(c)}
    by_type: Counter[str] = Counter()
    by_outcome: dict[str, Counter[str]] = defaultdict(Counter)
    by_window: dict[str, Counter[str]] = defaultdict(Counter)
    ops = history.workload
    for o in ops:
        if o.ok:
            continue
        err = o.error or "(none)"
        by_type[err] += 1
        by_outcome["dropped" if dropped(o) else o.outcome][err] += 1
        by_window["during fault" if id(o) in in_fault else "outside fault"][err] += 1
    metrics = {"by_type": dict(by_type.most_common()),
               "by_outcome": {k: dict(v) for k, v in by_outcome.items()},
               "by_window": {k: dict(v) for k, v in by_window.items()},
               "non_ok": sum(by_type.values()), "ops": len(ops)}
    listing = ", ".join(f"{k} x{v}" for k, v in by_type.most_common(5))
    text = (f"{metrics['non_ok']} of {len(ops)} operations were not ok: {listing}." if by_type
            else f"None of {len(ops)} operations failed.")
    if p["allowed"] is None:
        return measured("errors_by_type", metrics, text)
    bad = sorted(set(by_type) - set(p["allowed"]))
    metrics["unexpected"] = bad
    claim = f"no error type other than {', '.join(p['allowed'])}"
    return judged("errors_by_type", bool(bad), metrics,
                  text + (f" Unexpected error types: {', '.join(bad)}." if bad else ""), claim)


SEND_LAG_DEFAULTS = {"max_p99_ms": 10.0}  # ms of p99 send lag tolerated


def send_lag(history: History, final_state: Mapping[str, Any],
             params: Mapping[str, Any]) -> CheckResult:
    """A claim about the lab itself: the load generator kept its schedule (p99 send
    lag <= ``max_p99_ms``). When it did not, the figures measure the generator, not
    Redis: the verdict is ``unknown``, never ``violated``."""
    p = get_params("send_lag", params, SEND_LAG_DEFAULTS)
    claim = f"the load generator kept its schedule (p99 send lag <= {p['max_p99_ms']:g} ms)"
    lags = [o.send_lag for o in history.workload if not dropped(o)]
    if not lags:
        return CheckResult("send_lag", UNKNOWN, {}, "No launched operations.", claim)
    p99 = _p99_ms(lags)
    m = {"send_lag_p99_ms": p99, "send_lag_max_ms": max(lags) * 1000, "max_p99_ms": p["max_p99_ms"]}
    if p99 > p["max_p99_ms"]:
        return CheckResult("send_lag", UNKNOWN, m,
                           f"The load generator fell behind (p99 send lag {p99:.1f} ms > "
                           f"{p['max_p99_ms']:g} ms): latency figures are not trustworthy.", claim)
    return judged("send_lag", False, m, f"The load generator kept its schedule (p99 send lag {p99:.2f} ms).",
                  claim)
