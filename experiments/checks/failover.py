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

Promotions after the first in the same cycle (a second failover: another
``+switch-master`` to a new address) are listed per cycle (``later``) and
counted (``second_failovers``); the figure stays the first one.

Two primaries at once: per cycle, the spans in which more nodes answered ``ROLE``
as a primary than before the run's first fault (one with Sentinel; the role
poll, resolution 0.1 s; the server view's 0.5 s without it), with the nodes
(``two_primaries``), and the longest span's length (``two_primaries_s``).
Writes a client sent to the one that is later demoted are lost. Seen after a
second failover: the first pick kept answering as a primary for 10 s (Sentinel
waits 8 s, ``SENTINEL_PUBLISH_PERIOD * 4``, before reconfiguring a node that
claims the master role), and clients that kept their connections wrote there.

The resolution is part of every figure. Without a promotion (a single node, or
a fault that does not trigger one) the figure is None and the text says so. A
cycle the observer's records do not cover up to its heal (its last INFO sample,
taken every 0.5 s, came earlier: the observer died or hung) is *unobserved*:
whether a node was promoted is unknown, and the text says that instead.

The client's share of each outage (``topologies.outage.client_share``): the
workload is *served again* when the first ok workload op completes after the
last workload op of the fault window that was not ok (intended before the heal);
"Redis needed X s to promote; clients needed Y s more" is inject -> promotion and
promotion -> served again. Clients that were first served again only after the
heal get no share (None: the heal, not the failover, ended their outage), and
neither do clients that never failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from topologies.outage import client_share

from ..history import ROLE, SERVER_INFO, TOPOLOGY, Cycle, Event, History, Op
from ..stats import Spread
from .base import UNKNOWN, CheckResult, fmt_s, get_params, judged, measured

DEFAULTS = {"max_failover_s": None}  # s; makes it a claim: violated if a promotion took longer or never came
SERVER_VIEW_RESOLUTION_S = 0.5
POLL_RESOLUTION_S = 0.1  # experiments.topology_events polls every node's ROLE this often


def _promotion(history: History, c: Cycle) -> dict[str, Any]:
    """The first promotion in cycle ``c`` and how it was observed."""
    in_cycle = [e for e in history.events if c.start <= e.t < c.next]
    switch = next((e for e in in_cycle if e.kind == TOPOLOGY and e.fields.get("event") == "+switch-master"), None)
    odown = next((e for e in in_cycle if e.kind == TOPOLOGY and e.fields.get("event") == "+odown"), None)
    out: dict[str, Any] = {"cycle": c.index, "odown_s": odown.t - c.start if odown else None}
    if switch is not None:
        return {**out, "failover_s": switch.t - c.start, "promoted": _switch_target(switch),
                "observed_by": f"{switch.fields.get('source')} +switch-master",
                "resolution_s": float(switch.fields.get("resolution_s", 0.001)),
                "later": _later_switches(in_cycle, switch, c)}
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
                "resolution_s": res, "later": []}
    return {**out, "failover_s": None, "promoted": None, "observed_by": None, "resolution_s": None, "later": []}


def observed_until(history: History) -> float | None:
    """The last time (s) the observer recorded an INFO sample (None: the history has none, e.g. a
    hand-written one)."""
    return max((e.t for e in history.events_of(SERVER_INFO)), default=None)


def observer_covers(until: float | None, t: float) -> bool:
    """Whether the observer's samples (the last at ``until``; None: a history without any) reach time
    ``t``, with two sampling intervals of slack."""
    return until is None or until + 2 * SERVER_VIEW_RESOLUTION_S >= t


def _unobserved(promo: dict[str, Any], c: Cycle, until: float | None) -> bool:
    """No promotion seen, and the observer's samples stop before the cycle's heal."""
    return promo["promoted"] is None and not observer_covers(until, c.heal)


def served_again(ops: list[Op], c: Cycle) -> tuple[float | None, bool]:
    """When the workload was served again in cycle ``c`` (s since t0): the end of the first ok
    op completing after the last failed/unknown op of the fault window; and whether any op of
    the window failed at all. None when none was ok after it before the next cycle."""
    failed = [o for o in ops if not o.ok and c.start <= o.end and o.intended < c.heal]
    if not failed:
        return None, False
    last = max(o.end for o in failed)
    return min((o.end for o in ops if o.ok and o.end > last and o.intended < c.next), default=None), True


def _client_share(promotion: dict[str, Any], ops: list[Op], c: Cycle) -> dict[str, Any]:
    """Redis's and the client's share of cycle ``c``'s outage (see the module doc), in s."""
    served_t, failed = served_again(ops, c)
    promoted_t = None if promotion["failover_s"] is None else c.start + promotion["failover_s"]
    out: dict[str, Any] = {"clients_failed": failed,
                           "served_again_s": None if served_t is None else served_t - c.start,
                           "served_after_heal": served_t is not None and served_t >= c.heal}
    share = client_share(c.start, promoted_t, served_t if failed and served_t is not None and served_t < c.heal
                         else None)
    return {**out, "client_s": share["client_s"]}


def _role_source(history: History) -> tuple[list[Event], float] | None:
    """The role events to read primaries from, in time order, and their resolution: the role poll
    (``topology`` role events), else the server view's ``role`` events."""
    sources = ((TOPOLOGY, POLL_RESOLUTION_S), (ROLE, SERVER_VIEW_RESOLUTION_S))
    return next(((evs, res) for kind, res in sources if (evs := _role_events(history, kind))), None)


def two_primaries(source: tuple[list[Event], float] | None, c: Cycle, usual: int) -> list[dict[str, Any]]:
    """Spans of cycle ``c`` (s after its inject) in which more than ``usual`` nodes answered as primary
    (before the run's first inject: one with Sentinel, three in a Cluster, where the extra one is a
    second primary of some slots), from ``source`` (``_role_source``). ``nodes``: every node that
    answered as primary in the span."""
    if source is None or not usual:
        return []
    events, resolution = source
    roles: dict[str, str] = {}
    spans: list[dict[str, Any]] = []
    since: float | None = None
    nodes: set[str] = set()

    def close(t: float) -> None:
        if since is not None and t > since:
            spans.append({"start_s": since - c.start, "duration_s": t - since, "nodes": sorted(nodes),
                          "resolution_s": resolution})

    for e in events:
        if e.t >= c.next:
            break
        roles[str(e.fields["node"])] = str(e.fields["role"])
        t = max(e.t, c.start)
        primaries = {n for n, r in roles.items() if r == "primary"}
        if len(primaries) > usual:
            if since is None:
                since, nodes = t, set()
            nodes |= primaries
        elif since is not None:
            close(t)
            since = None
    close(c.next)
    return spans


def _primaries_before(source: tuple[list[Event], float] | None, t: float) -> int:
    """How many nodes answered as primary just before ``t``."""
    if source is None:
        return 0
    return sum(1 for r in _roles_at(source[0], t).values() if r == "primary")


def _roles_at(events: list[Event], t: float) -> dict[str, str]:
    return {str(e.fields["node"]): str(e.fields["role"]) for e in events if e.t < t}


def _role_events(history: History, kind: str) -> list[Event]:
    return sorted((e for e in history.events if e.kind == kind and "role" in e.fields and "node" in e.fields),
                  key=lambda e: e.t)


def _two_primaries_text(r: dict[str, Any]) -> str:
    return "".join(f" {' and '.join(x['nodes'])} answered as primaries at once for {fmt_s(x['duration_s'])}, from "
                   f"{fmt_s(x['start_s'])} after the fault (resolution {fmt_s(x['resolution_s'])}): writes sent "
                   "to the one later demoted are lost." for x in r["two_primaries"])


def _later_text(r: dict[str, Any]) -> str:
    """The cycle's promotions after the first: a second failover."""
    return "".join(f" Then {x['promoted']} promoted {fmt_s(x['after_s'])} after the fault: another failover."
                   for x in r["later"])


def _share_text(r: dict[str, Any]) -> str:
    """'Redis needed X s to promote; clients needed Y s more' for one cycle."""
    if r["promoted"] is None:
        return ""
    if not r["clients_failed"]:
        return " Clients saw no failure."
    if r["client_s"] is None:
        return (" Clients were served again only after the heal." if r["served_after_heal"]
                else " Clients were not served again before the run ended.")
    return f" Redis needed {fmt_s(r['failover_s'])} to promote; clients needed {fmt_s(r['client_s'])} more."


def _later_switches(in_cycle: list[Event], first: Event, c: Cycle) -> list[dict[str, Any]]:
    """Promotions after the cycle's first one (each Sentinel publishes its own ``+switch-master``:
    one per distinct old -> new address). A second failover right after the first happens: on
    a switch Sentinel keeps its peers' is-master-down votes about the old primary (valid 5 s),
    so one Sentinel that misses the new primary's PING for down-after-milliseconds fails it
    over too; writes the first pick acknowledged in between are lost."""
    seen = {_switch_addresses(first)}
    later: list[dict[str, Any]] = []
    for e in in_cycle:
        if e.kind != TOPOLOGY or e.fields.get("event") != "+switch-master" or e.t < first.t:
            continue
        addresses = _switch_addresses(e)
        if addresses not in seen:
            seen.add(addresses)
            later.append({"after_s": e.t - c.start, "promoted": _switch_target(e)})
    return later


def _switch_addresses(e: Event) -> tuple[str, ...]:
    """``+switch-master``'s old and new address (its detail without the master name)."""
    return tuple(str(e.fields.get("detail", "")).split()[1:5])


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
    ops = history.workload
    until = observed_until(history)
    promotions = [(c, _promotion(history, c)) for c in cycles]
    roles = _role_source(history)
    usual = _primaries_before(roles, cycles[0].start)
    results = [{**promo, **_client_share(promo, ops, c), "unobserved": _unobserved(promo, c, until),
                "two_primaries": two_primaries(roles, c, usual)} for c, promo in promotions]
    spread = Spread.of(r["failover_s"] for r in results)
    res = max((r["resolution_s"] for r in results if r["resolution_s"] is not None), default=None)
    client = Spread.of(r["client_s"] for r in results)
    m: dict[str, Any] = {"failovers": results, "failover_s": spread.median, "spread": spread.to_json(),
                         "resolution_s": res,
                         "odown_spread": Spread.of(r["odown_s"] for r in results).to_json(),
                         "client_s": client.median, "client_spread": client.to_json()}
    m["second_failovers"] = sum(1 for r in results if r["later"])
    m["unobserved_cycles"] = sum(1 for r in results if r["unobserved"])
    m["two_primaries_s"] = max((x["duration_s"] for r in results for x in r["two_primaries"]), default=0.0)
    text = " ".join(_cycle_text(r, until) for r in results)
    lim = p["max_failover_s"]
    if lim is None:
        return measured("failover_time", m, text)
    claim = f"a replica is promoted within {fmt_s(lim)}"
    # a promotion over the limit, or none in an observed cycle
    slow = any(r["failover_s"] > lim if r["failover_s"] is not None else not r["unobserved"] for r in results)
    if m["unobserved_cycles"] and not slow:
        return CheckResult("failover_time", UNKNOWN, m, text + f" Limit: {fmt_s(lim)}.", claim)
    return judged("failover_time", slow, m, text + f" Limit: {fmt_s(lim)}.", claim)


def _cycle_text(r: dict[str, Any], until: float | None) -> str:
    return _promotion_text(r, until) + _two_primaries_text(r)


def _promotion_text(r: dict[str, Any], until: float | None) -> str:
    if r["promoted"]:
        return (f"Cycle {r['cycle']}: {r['promoted']} promoted {fmt_s(r['failover_s'])} after the fault "
                f"(seen by {r['observed_by']}, resolution {fmt_s(r['resolution_s'])})." + _share_text(r)
                + _later_text(r))
    if r["unobserved"]:
        return (f"Cycle {r['cycle']}: unknown whether a node was promoted: the observer's records stop "
                f"{fmt_s(until)} into the run, before this cycle's heal.")
    return f"Cycle {r['cycle']}: no node was promoted (the outage lasted until the heal)."

