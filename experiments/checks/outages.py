"""Claims about the outages people report, each judged against what was *published* about them:
held means the lab reproduced the published expectation, violated means it did not.

* ``expectation``: wraps another check: the published expectation is that check's verdict
  (e.g. "acknowledged writes are lost through a manual Sentinel failover": ``lost_writes``
  violated).
* ``persistence_loss``: per kill, which acknowledged writes were lost, against the bound of the
  persistence mode (none: all; RDB: since the last snapshot; AOF everysec: about a second; AOF
  always: none); with the restart (loading) time and the baseline write latency.
* ``dataset_after_restart``: each node's dataset size before the fault and after the restart
  (``dataset`` events written by the scenario): kept or wiped, as published.
* ``failover_expected``: whether a replica was promoted in each cycle, as published, and how long
  writes failed.
* ``replica_staleness``: replica reads checked against the increments acknowledged before they
  began: how many were stale, by how long at most, and how many the pattern itself flagged.
* ``cache_vs_database``: through a thin link, did reading through the cache still beat the database,
  as the link's rate predicts?

Events read: ``dataset`` {cycle, when: before|after, sizes: {node: keys}}, ``restart_ready``
{cycle, node, ready_s}; the final state's ``database_ms`` (bandwidth).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from ..history import FAIL as OP_FAIL
from ..history import History
from ..stats import summarize
from .base import REQUIRED, UNKNOWN, CheckResult, arg, fmt_pct, fmt_s, get_params, judged
from .failover import _promotion

DATASET, RESTART_READY = "dataset", "restart_ready"


def _published(p: Mapping[str, Any]) -> str:
    return f"Published ({p['source']}): {p['published']}." if p.get("source") else f"Published: {p['published']}."


def _matches(ok: bool) -> str:
    return "The lab reproduced it." if ok else "The lab did NOT reproduce it."


# -- expectation: another check's verdict, as published -----------------------------------------
EXPECTATION_DEFAULTS = {"check": REQUIRED, "params": {}, "expect": REQUIRED, "published": REQUIRED, "source": ""}


def expectation(history: History, final_state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """Claim: check ``check`` comes out ``expect`` (held / violated), as ``published``."""
    from . import run_check  # the registry imports this module
    p = get_params("expectation", params, EXPECTATION_DEFAULTS)
    claim = f"as published: {p['published']}"
    inner = run_check(p["check"], history, final_state, p["params"])
    m = {"check": p["check"], "expect": p["expect"], "observed": inner.verdict, "inner": inner.metrics}
    if inner.verdict not in ("held", "violated"):
        return CheckResult("expectation", UNKNOWN, m, f"{_published(p)} The lab could not tell: "
                           f"{inner.explanation}", claim)
    ok = inner.verdict == p["expect"]
    gist = inner.explanation.split(";")[0].rstrip(".")  # its first clause: the full sentence is the check's own
    return judged("expectation", not ok, m, f"{_published(p)} The lab: {gist}. {_matches(ok)}", claim)


# -- persistence ------------------------------------------------------------------------------------
PERSISTENCE_DEFAULTS = {"mode": REQUIRED, "bound_s": None, "write_op": "add", "value_arg": "value",
                        "final_key": "set", "source": "Redis persistence docs"}
EXPECTED_LOSS = {
    "none": "every acknowledged write is lost at each crash (nothing is on disk)",
    "rdb": "the writes acknowledged since the last snapshot are lost",
    "aof-everysec": "at most about one second of acknowledged writes is lost (fsync every second; a crash of "
                    "the process alone leaves the written AOF in the page cache)",
    "aof-always": "no acknowledged write is lost (fsync before every reply)",
}


def _events(history: History, kind: str) -> list[Any]:
    return [e for e in history.events if e.kind == kind]


def _restart_text(history: History) -> tuple[list[float], str]:
    ready = [float(e.fields["ready_s"]) for e in _events(history, RESTART_READY) if e.fields.get("ready_s") is not None]
    if not ready:
        return ready, ""
    return ready, f" The restarted node answered {', '.join(fmt_s(r) for r in ready)} after it was started (loading)."


def persistence_loss(history: History, final_state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """Claim: per crash, the acknowledged writes lost are those the persistence mode allows to lose."""
    p = get_params("persistence_loss", params, PERSISTENCE_DEFAULTS)
    mode = p["mode"]
    if mode not in EXPECTED_LOSS:
        raise ValueError(f"persistence_loss: mode {mode!r}; accepted: {', '.join(EXPECTED_LOSS)}")
    claim = f"as published ({mode}): {EXPECTED_LOSS[mode]}"
    if p["final_key"] not in final_state:
        return CheckResult("persistence_loss", UNKNOWN, {}, "No final read, so lost writes cannot be counted.", claim)
    final = set(final_state[p["final_key"]])
    acks = sorted((o.end, arg(o.args, p["value_arg"])) for o in history.ops if o.op == p["write_op"] and o.ok)
    kills = [c.start for c in history.cycles()]
    cycles, problems = [], []
    prev = float("-inf")
    for i, kill in enumerate(kills, 1):
        acked = [(t, v) for t, v in acks if prev <= t < kill]
        lost = [(t, v) for t, v in acked if v not in final]
        oldest = max((kill - t for t, _v in lost), default=None)
        cycles.append({"cycle": i, "acked": len(acked), "lost": len(lost), "oldest_lost_s": oldest})
        if mode == "none" and len(lost) != len(acked):
            problems.append(f"crash {i}: {len(acked) - len(lost)} writes survived a crash without persistence")
        elif mode == "aof-always" and lost:
            problems.append(f"crash {i}: {len(lost)} writes lost despite fsync before every reply")
        elif mode in ("rdb", "aof-everysec") and oldest is not None and p["bound_s"] is not None \
                and oldest > p["bound_s"]:
            problems.append(f"crash {i}: a lost write had been acknowledged {fmt_s(oldest)} before the crash "
                            f"(bound {fmt_s(p['bound_s'])})")
        prev = kill
    base = summarize([o for o in history.before_faults() if o.op == p["write_op"]]).to_json()
    ready, ready_text = _restart_text(history)
    m = {"mode": mode, "cycles": cycles, "baseline_write_p50_ms": base["p50_ms"],
         "baseline_write_p99_ms": base["p99_ms"], "restart_ready_s": ready, "problems": problems}
    per = "; ".join(f"crash {c['cycle']}: {c['lost']} of {c['acked']} acknowledged writes lost"
                    + (f", the oldest acknowledged {fmt_s(c['oldest_lost_s'])} before the crash"
                       if c["oldest_lost_s"] is not None else "") for c in cycles)
    text = (f"Expected ({mode}): {EXPECTED_LOSS[mode]}"
            + (f" (bound {fmt_s(p['bound_s'])})" if p["bound_s"] is not None else "")
            + f". The lab: {per or 'no crash'}."
            + ready_text + f" Baseline write latency p50 {_ms(base['p50_ms'])}, p99 {_ms(base['p99_ms'])}. "
            + ("; ".join(problems) + ". " if problems else "") + _matches(not problems and bool(cycles)))
    if not cycles:
        return CheckResult("persistence_loss", UNKNOWN, m, "No crash in the history.", claim)
    return judged("persistence_loss", bool(problems), m, text, claim)


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} ms"


# -- dataset before / after ---------------------------------------------------------------------------
MIN_JUDGED_KEYS = 100  # a node holding fewer keys before the fault has nothing to lose: shown, not judged
DATASET_DEFAULTS = {"expect": REQUIRED, "published": REQUIRED, "source": "", "min_kept": 0.99}


def dataset_after_restart(history: History, final_state: Mapping[str, Any],
                          params: Mapping[str, Any]) -> CheckResult:
    """Claim: each node's dataset is ``kept`` (after >= min_kept x before) or ``lost`` (after < 1 %
    of before) through the fault, as published. Sizes from ``dataset`` events."""
    p = get_params("dataset_after_restart", params, DATASET_DEFAULTS)
    if p["expect"] not in ("kept", "lost"):
        raise ValueError("dataset_after_restart: expect is kept or lost")
    claim = f"as published: {p['published']}"
    by: dict[int, dict[str, dict[str, int]]] = defaultdict(dict)
    for e in _events(history, DATASET):
        by[int(e.fields["cycle"])][str(e.fields["when"])] = {k: int(v) for k, v in e.fields["sizes"].items()
                                                             if v is not None}
    cycles, parts, bad = [], [], []
    for cycle in sorted(by):
        before, after = by[cycle].get("before", {}), by[cycle].get("after", {})
        nodes = sorted(set(before) & set(after))
        if not nodes:
            continue
        judged_nodes = [n for n in nodes if before[n] >= MIN_JUDGED_KEYS]  # something there to lose
        kept = [after[n] >= p["min_kept"] * before[n] for n in judged_nodes]
        lost = [after[n] < 0.01 * before[n] for n in judged_nodes]
        cycles.append({"cycle": cycle, "before": before, "after": after, "judged": bool(judged_nodes)})
        parts.append(f"cycle {cycle}: " + ", ".join(f"{n} {before[n]} -> {after[n]} keys" for n in nodes))
        if judged_nodes and not (all(kept) if p["expect"] == "kept" else all(lost)):
            bad.append(cycle)
    m = {"cycles": cycles, "expect": p["expect"], "mismatched_cycles": bad}
    if not any(c["judged"] for c in cycles):
        return CheckResult("dataset_after_restart", UNKNOWN, m, "No dataset sizes before and after the fault "
                           "(a node did not answer).", claim)
    text = f"{_published(p)} Dataset size per node, before the fault and after the restart: {'; '.join(parts)}. "
    return judged("dataset_after_restart", bool(bad), m, text + _matches(not bad), claim)


# -- failover or not --------------------------------------------------------------------------------
FAILOVER_DEFAULTS = {"expect": REQUIRED, "published": REQUIRED, "source": "", "write_ops": None}


def failover_expected(history: History, final_state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """Claim: a replica is promoted in every cycle (``expect`` true) or in none (false), as published.
    Also how long requests failed: from the first failure after the inject to the first success after it."""
    p = get_params("failover_expected", params, FAILOVER_DEFAULTS)
    claim = f"as published: {p['published']}"
    cycles = history.cycles()
    if not cycles:
        return CheckResult("failover_expected", UNKNOWN, {}, "No fault in the history.", claim)
    ops = [o for o in history.workload if p["write_ops"] is None or o.op in p["write_ops"]]
    rows, parts = [], []
    for c in cycles:
        promo = _promotion(history, c)
        mine = [o for o in ops if o.end >= c.start and o.intended < c.next]
        first_fail = min((o.end for o in mine if o.outcome == OP_FAIL or o.outcome == "unknown"), default=None)
        back = None if first_fail is None else min((o.end for o in mine if o.ok and o.start >= first_fail),
                                                   default=None)
        outage = None if first_fail is None else ((back if back is not None else c.next) - c.start)
        rows.append({"cycle": c.index, "promoted": promo.get("promoted"), "failover_s": promo.get("failover_s"),
                     "outage_s": outage, "recovered": back is not None or first_fail is None})
        parts.append(f"cycle {c.index}: " + (f"{promo['promoted']} promoted after {fmt_s(promo['failover_s'])}"
                                              if promo.get("promoted") else "no replica promoted")
                     + (f", requests failed for {fmt_s(outage)} after the fault began" if outage is not None
                        else ", no request failed"))
    got = [r["promoted"] is not None for r in rows]
    ok = all(got) if p["expect"] else not any(got)
    m = {"cycles": rows, "expect_failover": bool(p["expect"])}
    return judged("failover_expected", not ok, m, f"{_published(p)} The lab: {'; '.join(parts)}. {_matches(ok)}",
                  claim)


# -- replica reads -------------------------------------------------------------------------------------
STALE_DEFAULTS = {"max_stale_s": REQUIRED, "read_op": "replica_read", "incr_op": "zincrby", "tolerance": 1e-6,
                  "published": "replication is asynchronous: a replica serves what it has received, so a read "
                               "from it lags the primary by about the replication delay", "source": "Redis docs, "
                  "replication"}


def replica_staleness(history: History, final_state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """Claim: replica reads are stale by at most ``max_stale_s``. A read of member m that returned s is
    stale when the increments of m acknowledged before the read began sum to more than s; it is stale
    by the time since the first acknowledgement it misses."""
    p = get_params("replica_staleness", params, STALE_DEFAULTS)
    claim = f"replica reads are stale by at most {fmt_s(p['max_stale_s'])} (the replication delay)"
    acks: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for o in history.ops:
        if o.op == p["incr_op"] and o.ok:
            acks[str(arg(o.args, "member"))].append((o.end, float(arg(o.args, "amount", 1))))
    for v in acks.values():
        v.sort()
    reads = [o for o in history.workload if o.op == p["read_op"] and o.ok and isinstance(o.value, dict)
             and o.value.get("source") == "replica"]
    stale, flagged, unflagged, worst = 0, 0, 0, 0.0
    in_fault = {id(o) for c in history.cycles() for o in history.during(c)}
    stale_in_fault = 0
    for o in reads:
        member, got = str(arg(o.args, "member")), float(o.value.get("score") or 0.0)
        total, missed_since = 0.0, None
        for t, amount in acks.get(member, []):
            if t >= o.start:
                break
            total += amount
            if total > got + p["tolerance"] and missed_since is None:
                missed_since = t
        if missed_since is None:
            continue
        stale += 1
        stale_in_fault += id(o) in in_fault
        worst = max(worst, o.start - missed_since)
        if o.value.get("stale"):
            flagged += 1
        else:
            unflagged += 1
    m = {"replica_reads": len(reads), "stale": stale, "stale_during_fault": stale_in_fault,
         "stale_ratio": stale / len(reads) if reads else None, "max_stale_s": worst, "flagged": flagged,
         "unflagged": unflagged, "bound_s": p["max_stale_s"]}
    if not reads:
        return CheckResult("replica_staleness", UNKNOWN, m, "No read was served by a replica.", claim)
    text = (f"{_published(p)} The lab: {stale} of {len(reads)} replica reads were stale ({fmt_pct(m['stale_ratio'])};"
            f" {stale_in_fault} during the fault), by at most {fmt_s(worst)} (bound {fmt_s(p['max_stale_s'])}); "
            f"the leaderboard flagged {flagged} of them stale and missed {unflagged}. "
            + _matches(worst <= p["max_stale_s"]))
    return judged("replica_staleness", worst > p["max_stale_s"], m, text, claim)


# -- a thin pipe: does the cache still help? ------------------------------------------------------------
BANDWIDTH_DEFAULTS = {"value_bytes": REQUIRED, "rate_kb_s": REQUIRED, "read_op": "read"}


def cache_vs_database(history: History, final_state: Mapping[str, Any], params: Mapping[str, Any]) -> CheckResult:
    """Claim: whether reading through the cache beats reading the database during the fault is what the
    link's rate predicts (a value takes value_bytes / rate to cross the link; the database's own read
    time is measured by the scenario, ``database_ms`` in the final state)."""
    p = get_params("cache_vs_database", params, BANDWIDTH_DEFAULTS)
    db = final_state.get("database_ms") or {}
    transfer_ms = p["value_bytes"] / (p["rate_kb_s"] * 1000) * 1000
    claim = "the cache helps exactly while a value crosses the thin link faster than the database serves it"
    if not db.get("p50"):
        return CheckResult("cache_vs_database", UNKNOWN, {}, "No database read time in the final state.", claim)
    cycles = history.cycles()
    reads = [o for c in cycles for o in history.during(c) if o.op == p["read_op"]]
    s = summarize(reads).to_json()
    sources = [o.value.get("source", "") for o in reads if o.ok and isinstance(o.value, dict)]
    from_redis = sources.count("cache")
    fell_back = sum(1 for src in sources if src.startswith("fallback"))
    window_s = sum(c.heal - c.start for c in cycles)
    throughput = s["ok"] / window_s if window_s > 0 else None
    predicted = transfer_ms < db["p50"]
    observed = s["p50_ms"] is not None and s["p50_ms"] < db["p50"] and from_redis > 0.5 * max(1, len(reads))
    m = {"transfer_ms": transfer_ms, "database_p50_ms": db["p50"], "database_p99_ms": db.get("p99"),
         "reads_during": len(reads), "from_redis": from_redis, "p50_during_ms": s["p50_ms"],
         "p99_during_ms": s["p99_ms"], "availability_during": s["availability"],
         "fell_back": fell_back, "throughput_during": throughput, "predicted_helps": predicted,
         "observed_helps": observed}
    text = (f"{p['value_bytes'] / 1024:g} KiB values through {p['rate_kb_s']:g} KB/s per connection: a value takes "
            f"{transfer_ms:.0f} ms to cross, the database serves it in {db['p50']:.1f} ms (p50), so the cache "
            f"should {'still help' if predicted else 'stop helping'}. During the fault {from_redis} of {len(reads)} "
            f"reads came from Redis and {fell_back} fell back to the database after an error (timeouts), "
            + (f"{throughput:.0f} reads/s; " if throughput is not None else "")
            + f"reads took p50 {_ms(s['p50_ms'])}, p99 {_ms(s['p99_ms'])}: the cache "
            f"{'helped' if observed else 'did not help'}. {_matches(predicted == observed)}")
    return judged("cache_vs_database", predicted != observed, m, text, claim)
