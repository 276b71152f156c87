"""Split an outage into Redis's share and the client's share (pure functions, no Redis).

    kill_t ──── Redis detects, elects, promotes ────> promoted_t ── client notices ──> first_ok_t
            \\_____________ server_s ______________/              \\___ client_s ___/

All timestamps are seconds on one clock (``time.monotonic()``, which on Linux is
shared by every process on the machine). ``promoted_t`` is when the topology
*announced* the new primary: Sentinel's ``+switch-master``, or the Cluster
replica reporting ``ROLE`` master; ``first_ok_t`` is when the first write
issued after the fault was acknowledged.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def client_share(kill_t: float, promoted_t: float | None, first_ok_t: float | None) -> dict[str, float | None]:
    """Split the outage that began at ``kill_t`` (s) into Redis's and the client's share.

    Returns ``outage_s`` (kill to first acknowledged write), ``server_s`` (kill to the
    announced promotion) and ``client_s`` (promotion to first acknowledged write);
    ``server_s + client_s == outage_s`` whenever all three are known. A share that
    cannot be known is None: no promotion seen (``server_s``, ``client_s``), or no
    acknowledged write (``outage_s``, ``client_s``).

    A client can learn of the promotion a few milliseconds before an observer's
    pub/sub message arrives (it asks another Sentinel). A write acknowledged before
    ``promoted_t`` therefore counts as promoted at ``first_ok_t``: the client's
    share is never negative.
    """
    for name, value in (("kill_t", kill_t), ("promoted_t", promoted_t), ("first_ok_t", first_ok_t)):
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name}={value} is not a finite timestamp (seconds)")
    for name, value in (("promoted_t", promoted_t), ("first_ok_t", first_ok_t)):
        if value is not None and value < kill_t:
            raise ValueError(f"{name}={value} is before kill_t={kill_t}; accepted: timestamps at or after the "
                             "fault, on the same clock (hint: time.monotonic() in every process)")
    outage = None if first_ok_t is None else first_ok_t - kill_t
    if promoted_t is None:
        return {"outage_s": outage, "server_s": None, "client_s": None}
    promoted = promoted_t if first_ok_t is None else min(promoted_t, first_ok_t)
    return {"outage_s": outage, "server_s": promoted - kill_t,
            "client_s": None if first_ok_t is None else first_ok_t - promoted}


def spread(values: Sequence[float | None], digits: int = 3) -> dict[str, Any]:
    """Median, min and max of the known ``values`` (None = not measured), rounded to ``digits``;
    ``n`` counts the known values, ``missing`` the None ones."""
    known = [v for v in values if v is not None]
    missing = len(values) - len(known)
    if not known:
        return {"median": None, "min": None, "max": None, "n": 0, "missing": missing}
    return {"median": round(statistics.median(known), digits), "min": round(min(known), digits),
            "max": round(max(known), digits), "n": len(known), "missing": missing}
