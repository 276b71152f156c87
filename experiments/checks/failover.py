"""Failover time, from what the topology itself reported: a measurement.

Per fault cycle, seconds from the inject to the promotion of another node:

* Sentinel: the first ``+switch-master`` a Sentinel published on its pub/sub
  channel after the inject (``topology`` events recorded by
  ``experiments.topology_events``; resolution: delivery of the message, ~1 ms).
  The first ``+odown`` gives Sentinel's own detection time.
* Cluster: the first ``topology`` role event turning a node that was not a
  primary into one (each node's ``ROLE`` polled every 0.1 s: resolution 0.1 s).
* Fallback, for histories without topology events: the server view's ``role``
  events (INFO sampled every 0.5 s: resolution 0.5 s).

The resolution is part of every figure. Without a promotion (a single node, or
a fault that does not trigger one) the figure is None and the text says so.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..history import ROLE, TOPOLOGY, Cycle, Event, History
from ..stats import Spread
from .base import CheckResult, fmt_s, get_params, judged, measured

DEFAULTS = {"max_failover_s": None}  # s; makes it a claim: violated if a promotion took longer or never came
SERVER_VIEW_RESOLUTION_S = 0.5


def _promotion(history: History, c: Cycle) -> dict[str, Any]:
    """The first promotion in cycle ``c`` and how it was observed."""
    in_cycle = [e for e in history.events if c.start <= e.t < c.next]
    switch = next((e for e in in_cycle if e.kind == TOPOLOGY and e.fields.get("event") == "+switch-master"), None)
    odown = next((e for e in in_cycle if e.kind == TOPOLOGY and e.fields.get("event") == "+odown"), None)
    out: dict[str, Any] = {"cycle": c.index, "odown_s": odown.t - c.start if odown else None}
    if switch is not None:
        return {**out, "failover_s": switch.t - c.start, "promoted": _switch_target(switch),
                "observed_by": f"{switch.fields.get('source')} +switch-master",
                "resolution_s": float(switch.fields.get("resolution_s", 0.001))}
    for kind, resolution in ((TOPOLOGY, None), (ROLE, SERVER_VIEW_RESOLUTION_S)):
        roles = [e for e in history.events if e.kind == kind and "role" in e.fields]
        if not roles:
            continue
        before: dict[str, str] = {}
        for e in roles:
            if e.t < c.start:
                before[e.fields["node"]] = e.fields["role"]
        promoted = next((e for e in roles if c.start <= e.t < c.next and e.fields["role"] == "primary"
                         and before.get(e.fields["node"]) != "primary"), None)
        res = float(promoted.fields.get("resolution_s", SERVER_VIEW_RESOLUTION_S)) if promoted else resolution
        return {**out, "failover_s": promoted.t - c.start if promoted else None,
                "promoted": promoted.fields["node"] if promoted else None,
                "observed_by": "role poll" if kind == TOPOLOGY else "server view (INFO)",
                "resolution_s": res}
    return {**out, "failover_s": None, "promoted": None, "observed_by": None, "resolution_s": None}


def _switch_target(e: Event) -> str | None:
    """``+switch-master`` detail: ``<name> <old-ip> <old-port> <new-ip> <new-port>``; the node name when known."""
    parts = str(e.fields.get("detail", "")).split()
    return e.fields.get("promoted") or (f"{parts[3]}:{parts[4]}" if len(parts) >= 5 else None)


def failover_time(history: History, final_state: Mapping[str, Any],
                  params: Mapping[str, Any]) -> CheckResult:
    """Seconds from each inject to the first promotion of another node (see the module doc)."""
    p = get_params("failover_time", params, DEFAULTS)
    cycles = history.cycles()
    if not cycles:
        return measured("failover_time", {}, "No fault in the history.")
    results = [_promotion(history, c) for c in cycles]
    spread = Spread.of(r["failover_s"] for r in results)
    res = max((r["resolution_s"] for r in results if r["resolution_s"] is not None), default=None)
    m: dict[str, Any] = {"failovers": results, "failover_s": spread.median, "spread": spread.to_json(),
                         "resolution_s": res,
                         "odown_spread": Spread.of(r["odown_s"] for r in results).to_json()}
    text = "; ".join(
        f"cycle {r['cycle']}: {r['promoted']} promoted {fmt_s(r['failover_s'])} after the fault "
        f"(seen by {r['observed_by']}, resolution {fmt_s(r['resolution_s'])})" if r["promoted"]
        else f"cycle {r['cycle']}: no node was promoted (the outage lasted until the heal)" for r in results) + "."
    lim = p["max_failover_s"]
    if lim is None:
        return measured("failover_time", m, text)
    slow = any(r["failover_s"] is None or r["failover_s"] > lim for r in results)
    return judged("failover_time", slow, m, text + f" Limit: {fmt_s(lim)}.", f"a replica is promoted within {fmt_s(lim)}")
