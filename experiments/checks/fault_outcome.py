"""What the fault actually did, per cycle: evidence that it happened as planned.

A measurement (no verdict) read from the ``outcome`` of each ``fault_heal`` event
(``faults.kinds.Fault.outcome``): the steps of a rolling restart, the keys a resharding moved
and the slots heal had to finish, how long a stall lasted and what ended it (a SCRIPT KILL
before the heal's is Sentinel's), and any error the fault met half way, which would otherwise
leave a run judging a fault that never fully happened.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faults.events import FAULT_HEAL

from ..history import History
from .base import CheckResult, fmt_s, measured


def _words(outcome: Mapping[str, Any]) -> str:
    """One outcome in words; keys this module does not know are listed as they are."""
    parts = []
    if "lasted_s" in outcome:
        lasted = outcome["lasted_s"]
        parts.append(f"the stall ({outcome.get('how', '?')}) lasted "
                     f"{'until the heal and beyond' if lasted is None else fmt_s(lasted)}"
                     + (f", ended by {outcome['ended_by']}" if outcome.get("ended_by") else ""))
    if "calls" in outcome:
        parts.append(f"{outcome['calls']} KEYS scans")
    if outcome.get("steps"):
        parts.append("steps: " + ", ".join(map(str, outcome["steps"])))
    elif "order" in outcome:
        parts.append(f"no step done (order {', '.join(map(str, outcome['order']))})")
    if "moved" in outcome:
        moved = outcome["moved"]
        parts.append(f"moved {sum(moved.values())} keys in {len(moved)} slots")
    if outcome.get("fixed"):
        parts.append(f"heal finished {outcome['fixed']} half-moved slots")
    known = {"lasted_s", "how", "ended_by", "calls", "steps", "order", "moved", "fixed", "error"}
    parts += [f"{k}: {v}" for k, v in outcome.items() if k not in known]
    if outcome.get("error"):
        parts.append(f"ERROR half way: {outcome['error']}")
    return "; ".join(parts)


def fault_outcome(history: History, final_state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """Measurement: per heal, what the fault reported doing; ``errors`` counts the heals reporting
    an error (the fault did not happen as planned: read the run's claims with that in mind)."""
    heals = [e for e in history.events if e.kind == FAULT_HEAL]
    rows: list[dict[str, Any]] = [{"heal": i, "t": e.t, "fault": e.fields.get("fault"),
                                   "outcome": e.fields.get("outcome") or {}} for i, e in enumerate(heals, 1)]
    errors = sum(1 for r in rows if r["outcome"].get("error"))
    m = {"heals": rows, "errors": errors}
    if not any(r["outcome"] for r in rows):
        return measured("fault_outcome", m, "The faults reported nothing beyond their parameters."
                        if rows else "No fault was healed.")
    text = "; ".join(f"heal {r['heal']} ({r['fault']}): {_words(r['outcome']) or 'nothing to report'}"
                     for r in rows)
    return measured("fault_outcome", m, text + "." + (f" {errors} of {len(rows)} did not go as planned."
                                                      if errors else ""))
