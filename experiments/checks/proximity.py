"""Geo search: missing and stale results.

Ops ``geoadd`` (args ``{"member", "lon", "lat"}``), ``georem`` (args
``{"member"}``) and ``geosearch`` (args ``{"lon", "lat", "radius_m"}``, value:
list of members, or of ``[member, ...]`` lists). For each ok search, each
member's state is its last write acknowledged before the search started.

* missing: a member whose known position is inside the radius (less
  ``tolerance_m``) but absent from the result.
* stale: a result member that was removed, never added, or whose known
  position is outside the radius (plus ``tolerance_m``).

Members with a write whose outcome is unknown, or a write concurrent with the
search, are ambiguous and skipped. Distances use Redis's Earth radius.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ..history import FAIL as OP_FAIL
from ..history import History, Op
from .base import UNKNOWN, CheckResult, arg, get_params, judged, measured

EARTH_RADIUS_M = 6372797.560856  # metres, as in Redis geohash_helper.c

DEFAULTS = {"add_op": "geoadd", "remove_op": "georem", "search_op": "geosearch",
            "tolerance_m": 1.0,  # metres of slack at the radius boundary
            "max_missing": 0, "max_stale": 0,  # None for both: a measurement, not a claim
            "label": ""}  # prefixed to the explanation, e.g. "degraded answers"


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Haversine distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def proximity_results(history: History, final_state: Mapping[str, Any],
                params: Mapping[str, Any]) -> CheckResult:
    """Count missing and stale members across ok searches."""
    p = get_params("proximity_results", params, DEFAULTS)
    writes: dict[str, list[Op]] = defaultdict(list)
    for o in history.ops:
        if o.op in (p["add_op"], p["remove_op"]) and o.outcome != OP_FAIL:
            writes[str(arg(o.args, "member"))].append(o)
    searches = [o for o in history.ops if o.op == p["search_op"] and o.ok]
    tol = p["tolerance_m"]
    missing, stale, ambiguous = [], [], 0
    for s in searches:
        lon, lat, r = (float(arg(s.args, k)) for k in ("lon", "lat", "radius_m"))
        got = {str(x[0] if isinstance(x, (list, tuple)) else x) for x in (s.value or [])}
        for member in set(writes) | got:
            ws = writes.get(member, [])
            known = [w for w in ws if w.ok and w.end < s.start]
            last = max(known, key=lambda w: w.end, default=None)
            if any(w.start < s.end and (not w.ok or w.end >= s.start) and
                   (last is None or w.start > last.start) for w in ws):
                ambiguous += 1
                continue
            inside = outside = False
            if last is not None and last.op == p["add_op"]:
                d = distance_m(lon, lat, float(arg(last.args, "lon")), float(arg(last.args, "lat")))
                inside, outside = d <= r - tol, d > r + tol
            else:
                outside = True  # removed or never added
            if member in got and outside:
                stale.append({"search_start": s.start, "member": member})
            elif member not in got and inside:
                missing.append({"search_start": s.start, "member": member})
    m = {"searches": len(searches), "missing": len(missing), "stale": len(stale),
         "ambiguous_skipped": ambiguous,
         "examples": {"missing": missing[:5], "stale": stale[:5]}}
    measure_only = p["max_missing"] is None and p["max_stale"] is None
    claim = ("search answers reflect every acknowledged position"
             + (f" (up to {p['max_missing']} missing, {p['max_stale']} stale tolerated)"
                if p["max_missing"] or p["max_stale"] else ""))
    if not searches:
        if measure_only:
            return measured("proximity_results", m, "No such searches.")
        return CheckResult("proximity_results", UNKNOWN, m, "No successful geo searches to judge.", claim)
    prefix = f"{p['label']}: " if p["label"] else ""
    text = (f"{prefix}Across {len(searches)} searches, {len(missing)} expected members were missing "
            f"and {len(stale)} results were stale (removed or out of range); "
            f"{ambiguous} member checks were ambiguous and skipped.")
    if measure_only:
        return measured("proximity_results", m, text)
    bad = len(missing) > (p["max_missing"] or 0) or len(stale) > (p["max_stale"] or 0)
    return judged("proximity_results", bad, m, text, claim)
