"""Failover time, from what the servers reported (``role`` events of the server view).

Per fault window: the first node that becomes ``primary`` after the inject while
it was not primary before (a promotion), in seconds after the inject; and when
the topology had one primary again. Without a promotion (a single node, or a
fault that does not trigger one) the metric is None and the explanation says so.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..history import ROLE, History
from .base import FAIL, PASS, UNKNOWN, CheckResult, fmt_s, get_params

DEFAULTS = {"max_failover_s": None}  # s; fail if a promotion took longer (or never came)


def failover_time(history: History, final_state: Mapping[str, Any],
                  params: Mapping[str, Any]) -> CheckResult:
    """Seconds from each fault's inject to the first promotion of another node."""
    p = get_params("failover_time", params, DEFAULTS)
    roles = sorted(history.events_of(ROLE), key=lambda e: e.t)
    windows = history.fault_windows()
    if not roles:
        return CheckResult("failover_time", UNKNOWN, {}, "No server role samples in the history.")
    if not windows:
        return CheckResult("failover_time", UNKNOWN, {}, "No fault in the history.")
    results = []
    for w in windows:
        before: dict[str, str] = {}
        for e in roles:
            if e.t < w.start:
                before[e.fields["node"]] = e.fields["role"]
        promoted = next((e for e in roles if e.t >= w.start and e.fields["role"] == "primary"
                         and before.get(e.fields["node"]) != "primary"), None)
        results.append({"fault": w.fault, "failover_s": promoted.t - w.start if promoted else None,
                        "promoted": promoted.fields["node"] if promoted else None})
    m: dict[str, Any] = {"failovers": results,
                         "failover_s": next((r["failover_s"] for r in results if r["failover_s"] is not None), None)}
    text = "; ".join(
        f"{r['promoted']} promoted {fmt_s(r['failover_s'])} after the fault" if r["promoted"]
        else "no replica was promoted (the outage lasted until the heal)" for r in results)
    lim = p["max_failover_s"]
    if lim is not None and any(r["failover_s"] is None or r["failover_s"] > lim for r in results):
        return CheckResult("failover_time", FAIL, m, text + f"; limit {fmt_s(lim)}.")
    return CheckResult("failover_time", PASS, m, text + ".")
