"""Rate limiter: over-admission beyond the limit, and false rejections.

Ops ``request`` with args ``{"key": k}`` and value ``{"allowed": bool}`` (or a
bare bool); not-ok ops are errors (neither admitted nor rejected). The exact
admission instant of a request lies somewhere in its [start, end] interval,
taken on the wall clock (``wall`` .. ``wall + end - start``), since limiters
key their windows by wall or server time.

* fixed mode: windows ``[n*W, (n+1)*W)`` of ``window_s`` W. Over-admission in
  a window = requests **certainly** inside it and admitted, minus ``limit``.
  A rejection certainly inside a window where fewer than ``limit`` requests
  were even possibly admitted is a false rejection.
* sliding mode: over-admission = the most admitted requests certainly inside
  any W-second interval, minus ``limit``. A rejection is false when fewer
  than ``limit`` admissions possibly fell in the W seconds before it.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ..history import History
from .base import (
    REQUIRED,
    UNKNOWN,
    CheckResult,
    arg,
    fmt_pct,
    get_params,
    judged,
    measured,
    value_field,
)

DEFAULTS = {"limit": REQUIRED, "window_s": REQUIRED, "mode": "fixed",
            "request_op": "request", "key_arg": "key",
            "max_over_admission": 0,           # admissions beyond the limit tolerated (rate_limit)
            "max_false_rejection_ratio": None}  # share of rejections (false_rejections); None = a measurement

Iv = tuple[float, float]


def _analyze(history: History, p: Mapping[str, Any]) -> dict[str, Any]:
    """Admissions, rejections, over-admission and false rejections (see the module doc)."""
    if p["mode"] not in ("fixed", "sliding"):
        raise ValueError(f"mode must be 'fixed' or 'sliding', got {p['mode']!r}")
    W, limit = float(p["window_s"]), int(p["limit"])
    admitted: dict[Any, list[Iv]] = defaultdict(list)
    rejected: dict[Any, list[Iv]] = defaultdict(list)
    errors = requests = 0
    for o in history.ops:
        if o.op != p["request_op"]:
            continue
        requests += 1
        iv = (o.wall, o.wall + (o.end - o.start))
        if not o.ok:
            errors += 1
        elif value_field(o.value, "allowed", False):
            admitted[arg(o.args, p["key_arg"])].append(iv)
        else:
            rejected[arg(o.args, p["key_arg"])].append(iv)
    over, false_rej, worst = 0, 0, None
    for key in set(admitted) | set(rejected):
        adm = sorted(admitted.get(key, []))
        fn = _fixed if p["mode"] == "fixed" else _sliding
        o_k, f_k, w_k = fn(adm, rejected.get(key, []), W, limit)
        over += o_k
        false_rej += f_k
        if w_k is not None and (worst is None or w_k[1] > worst["admitted"]):
            worst = {"key": key, "window_start_wall": w_k[0], "admitted": w_k[1]}
    n_adm = sum(map(len, admitted.values()))
    n_rej = sum(map(len, rejected.values()))
    return {"requests": requests, "admitted": n_adm, "rejected": n_rej, "errors": errors,
            "over_admitted": over, "worst_window": worst, "false_rejections": false_rej,
            "false_rejection_ratio": false_rej / n_rej if n_rej else 0.0,
            "limit": limit, "window_s": W, "mode": p["mode"]}


def rate_limit(history: History, final_state: Mapping[str, Any],
               params: Mapping[str, Any]) -> CheckResult:
    """Claim: no request admitted beyond the limit (up to ``max_over_admission``)."""
    p = get_params("rate_limit", params, DEFAULTS)
    m = _analyze(history, p)
    claim = f"no request admitted over the limit of {m['limit']} per {m['window_s']:g} s" + (
        f" (up to {p['max_over_admission']} tolerated)" if p["max_over_admission"] else "")
    if m["requests"] == 0:
        return CheckResult("rate_limit", UNKNOWN, m, "No rate-limited requests in the history.", claim)
    text = (f"{m['over_admitted']} requests were admitted beyond the limit of {m['limit']} per "
            f"{m['window_s']:g} s ({m['mode']} window), out of {m['admitted']} admitted; "
            f"{m['errors']} requests errored.")
    return judged("rate_limit", m["over_admitted"] > p["max_over_admission"], m, text, claim)


def false_rejections(history: History, final_state: Mapping[str, Any],
                     params: Mapping[str, Any]) -> CheckResult:
    """Rejections that were not needed (fewer than ``limit`` admissions possible in the
    window). A measurement; a claim ("at most this share of rejections needless")
    when ``max_false_rejection_ratio`` is given."""
    p = get_params("false_rejections", params, DEFAULTS)
    m = _analyze(history, p)
    text = (f"{m['false_rejections']} of {m['rejected']} rejections "
            f"({fmt_pct(m['false_rejection_ratio'])}) were unnecessary (under the limit).")
    lim = p["max_false_rejection_ratio"]
    if lim is None:
        return measured("false_rejections", m, text)
    claim = "no request rejected while under the limit" if lim == 0 else \
        f"at most {fmt_pct(lim)} of rejections needless"
    if m["requests"] == 0:
        return CheckResult("false_rejections", UNKNOWN, m, "No rate-limited requests in the history.", claim)
    return judged("false_rejections", m["false_rejection_ratio"] > lim, m, text, claim)


def _fixed(adm: list[Iv], rej: list[Iv], W: float, limit: int
           ) -> tuple[int, int, tuple[float, int] | None]:
    certain: dict[int, int] = defaultdict(int)
    possible: dict[int, int] = defaultdict(int)
    for a, b in adm:
        wa, wb = math.floor(a / W), math.floor(b / W)
        if wa == wb:
            certain[wa] += 1
        for w in range(wa, wb + 1):
            possible[w] += 1
    over = sum(max(0, n - limit) for n in certain.values())
    false_rej = 0
    for a, b in rej:
        wa, wb = math.floor(a / W), math.floor(b / W)
        if wa == wb and possible.get(wa, 0) < limit:
            false_rej += 1
    worst = max(certain.items(), key=lambda kv: kv[1], default=None)
    return over, false_rej, (worst[0] * W, worst[1]) if worst else None


def _sliding(adm: list[Iv], rej: list[Iv], W: float, limit: int
             ) -> tuple[int, int, tuple[float, int] | None]:
    starts = [a for a, _ in adm]
    best, best_at = 0, None
    for i, (s, _) in enumerate(adm):
        j_end = bisect_left(starts, s + W)
        n = sum(1 for a, b in adm[i:j_end] if b < s + W)
        if n > best:
            best, best_at = n, s
    ends = sorted(b for _, b in adm)
    false_rej = 0
    for a, b in rej:
        # admissions possibly in (a - W, b]: end > a - W and start <= b
        possible = bisect_right(starts, b) - bisect_right(ends, a - W)
        if possible < limit:
            false_rej += 1
    return max(0, best - limit), false_rej, (best_at, best) if best_at is not None else None
