"""A run's report page (``report.md`` and ``report.html``): the answer in words and
numbers first, then the claims with their evidence, the measurements, the figures
per fault cycle with their spread, and how every figure was computed."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import fmt
from .pages import Cell, CellLike, Code, Heading, Image, Page, Para, Table
from .priority import Priority

TIMELINE_FILE = "timeline.png"
HISTORY_FILE = "history.jsonl"


def verdict_words(result: Mapping[str, Any]) -> str:
    """The verdict as a user reads it: which claim was violated, or why it is undecided."""
    v = result["verdict"]
    if v == "violated":
        return "violated: " + "; ".join(c["claim"] or c["name"] for c in result.get("violated", []))
    if v == "unknown":
        why = [*result.get("run_problems", []), *(c["claim"] or c["name"] for c in result.get("undecided", []))]
        return "undecided: " + "; ".join(why) if why else "undecided"
    return f"held: all {len(result.get('claims', []))} claims"


def answer(result: Mapping[str, Any]) -> str:
    """What users saw and what was lost, in one paragraph of words and numbers."""
    m = result["metrics"]
    sp = m.get("spread") or {}
    parts: list[str] = []
    if result.get("interrupted"):
        parts.append("The run was interrupted: the figures cover only part of it and no claim can be called held.")
    if m.get("faults"):
        n = len(m["faults"])
        label = m["faults"][0]["label"]
        dur = m.get("during_fault") or {}
        parts.append(
            f"While the fault ({label}) was active ({n} cycle{'s' if n != 1 else ''}), users saw "
            f"{fmt.spread(sp.get('availability_during'), fmt.pct)} availability; successful requests had "
            f"p99 {fmt.spread(sp.get('p99_during_ms'), fmt.ms)}"
            + (f" and failed ones took {fmt.spread(sp.get('error_p50_during_ms'), fmt.ms)} to fail (p50)"
               if dur.get("error_p50_ms") is not None else "")
            + (f"; {dur['dropped']} requests were dropped by the load generator" if dur.get("dropped") else "")
            + f". Before the fault: {fmt.pct((m.get('before_fault') or {}).get('availability'))} availability, "
              f"p99 {fmt.ms((m.get('before_fault') or {}).get('p99_ms'))}.")
        fo = sp.get("failover_s")
        if fo and fo.get("n"):
            parts.append(f"A replica was promoted {fmt.spread(fo, fmt.secs)} after the fault.")
        share = sp.get("client_share_s")
        if fo and fo.get("n") and share and share.get("n"):
            parts.append(f"Redis needed {fmt.spread(fo, fmt.secs)} to promote; clients needed "
                         f"{fmt.spread(share, fmt.secs)} more (the client's settings: see the client policy).")
        first = sp.get("first_success_s")
        rec = sp.get("recover_s")
        if first and first.get("n"):
            parts.append(f"After the heal the first request succeeded after {fmt.spread(first, fmt.secs)}"
                         + (f" and throughput was back after {fmt.spread(rec, fmt.secs)}." if rec and rec.get("n")
                            else "."))
    else:
        o = m["overall"]
        parts.append(f"No fault was injected: {fmt.pct(o['availability'])} of {o['ops']} requests succeeded, "
                     f"p99 {fmt.ms(o['p99_ms'])}.")
    for c in result.get("violated", []):
        parts.append(f"Violated: {c['claim'] or c['name']}. {c['explanation']}")
    for c in result.get("undecided", []):
        parts.append(f"Undecided: {c['claim'] or c['name']}. {c['explanation']}")
    if result["verdict"] == "held":
        parts.append(f"Every claim held ({', '.join(c['claim'] or c['name'] for c in result.get('claims', []))}).")
    return " ".join(parts)


def _tone(verdict: str | None) -> str:
    return verdict or "measured"


def headline_table(result: Mapping[str, Any]) -> Table:
    sp = result["metrics"].get("spread") or {}
    t = Table(["figure (over fault cycles)", "median", "range", "cycles"])
    rows = [("availability during the fault", "availability_during", fmt.pct),
            ("p99 of successful requests during the fault", "p99_during_ms", fmt.ms),
            ("time to error during the fault (p50)", "error_p50_during_ms", fmt.ms),
            ("time to the first failed request", "time_to_detect_s", fmt.secs),
            ("failover (promotion seen by the topology)", "failover_s", fmt.secs),
            ("clients' share: promotion to served again", "client_share_s", fmt.secs),
            ("first success after the heal", "first_success_s", fmt.secs),
            ("throughput back to 90 % of the baseline", "recover_s", fmt.secs),
            ("availability after the heal", "availability_after", fmt.pct),
            ("acknowledged writes lost within the fault windows", "lost_ratio_in_windows", fmt.pct)]
    for label, key, f in rows:
        s = sp.get(key)
        if not s or not s.get("n"):
            continue
        t.add(label, f(s["median"]), f"{f(s['low'])} to {f(s['high'])}" if s["n"] > 1 else "single value", s["n"])
    return t


def claims_table(result: Mapping[str, Any]) -> Table:
    t = Table(["claim", "verdict", "evidence"])
    for c in result.get("claims", []):
        t.add(c["claim"] or c["name"], Cell(c["verdict"], tone=_tone(c["verdict"])), c["explanation"])
    return t


def measurements_table(result: Mapping[str, Any]) -> Table:
    t = Table(["measurement", "result"])
    for c in result.get("measurements", []):
        t.add(c["name"].replace("_", " "), c["explanation"])
    return t


def windows_table(result: Mapping[str, Any]) -> Table:
    m = result["metrics"]
    t = Table(["window", "requests", "availability", "p50 ok", "p99 ok", "time to error p50", "fail / unknown",
               "dropped"])

    def row(name: str, s: Mapping[str, Any] | None) -> None:
        if s and s.get("ops"):
            t.add(name, s["ops"], fmt.pct(s["availability"]), fmt.ms(s["p50_ms"]), fmt.ms(s["p99_ms"]),
                  fmt.ms(s.get("error_p50_ms")), f"{s['fail']} / {s['unknown']}", s.get("dropped", 0))

    row("before the fault", m.get("before_fault"))
    for c in m.get("cycles", []):
        row(f"fault {c['cycle']} (inject to heal)", c["during"])
        row(f"after heal {c['cycle']}", c["after"])
    return t


def other_records_table(result: Mapping[str, Any]) -> Table:
    t = Table(["record kind", "operation", "ok", "fail", "unknown"])
    for kind, ops in (result["metrics"].get("other_records") or {}).items():
        for op, c in sorted(ops.items()):
            t.add(kind, op, c.get("ok", 0), c.get("fail", 0), c.get("unknown", 0))
    return t


def server_table(result: Mapping[str, Any]) -> Table:
    t = Table(["node", "roles", "unanswered samples", "ops/s mean / peak", "peak memory", "evicted", "hit rate",
               "peak replication lag", "peak clients"])
    for node, n in sorted((result.get("server") or {}).items()):
        t.add(node, " → ".join(n["roles"]) or "n/a", f"{n['down_samples']} of {n['samples']}",
              f"{n['ops_per_sec_mean']:.0f} / {n['ops_per_sec_peak']}", f"{n['used_memory_peak'] / 1048576:.1f} MiB",
              n["evicted_keys"], fmt.pct(n.get("hit_rate")), f"{n['repl_lag_bytes_peak']} B",
              n["connected_clients_peak"])
    return t


def method_text(result: Mapping[str, Any]) -> str:
    m = result["metrics"]
    warm = m.get("warmup") or {}
    return (f"Every figure is computed over the workload's own operations ({result['history']['workload_ops']} of "
            f"{result['history']['ops']} records; lock steps and worker records are counted apart below), after a "
            f"declared warm-up of {fmt.secs(warm.get('s') or 0.0)} "
            f"({warm.get('ops_excluded', 0)} operations excluded). 'During the fault' is one window per cycle, from "
            "the fault's inject event to its heal event. Latency percentiles are those of successful requests, "
            "measured from each request's intended start (open loop: no coordinated omission); failed requests "
            "are counted by the time they took to fail; requests dropped at the generator's in-flight cap count as "
            "failures and are shown as dropped. A timeout on a write is 'unknown' (it may have happened); a failed "
            "read is a failure.")


def run_page(result: Mapping[str, Any], links: Mapping[str, str] | None = None) -> Page:
    """The run report page. ``links``: extra files to link (label -> relative path)."""
    title = f"{result.get('experiment') or result.get('run_id') or 'run'}: {verdict_words(result)}"
    page = Page(title)
    labels = [f"{k} {result[k]}" for k in ("pattern", "topology", "backend", "profile", "run_id") if result.get(k)]
    if result.get("interrupted"):
        page.add(Para.of("INTERRUPTED: the run did not finish; figures cover part of it and the verdict is at best "
                         "undecided.", quote=True))
    page.add(Para.of(" · ".join(labels)), Heading("The answer"), Para.of(answer(result)))
    h = headline_table(result)
    if h.rows:
        page.add(h)
    page.add(Image(TIMELINE_FILE, "timeline: throughput, errors, latency, fault windows shaded"),
             Heading("Claims"), Para.of(hypothesis_text(result)), claims_table(result),
             Heading("Measurements"), measurements_table(result),
             Heading("Before, during and after each fault"), windows_table(result))
    other = other_records_table(result)
    if other.rows:
        page.add(Heading("Other records (not in the figures above)"), other)
    if result.get("server"):
        page.add(Heading("What Redis saw"), Para.of("Each node's INFO, sampled every 0.5 s on its direct port."),
                 server_table(result))
    page.add(Heading("How these figures were computed"), Para.of(method_text(result)))
    if result.get("client_policy"):
        page.add(Para.of(client_policy_text(result)))
    if result.get("generator_priority"):
        page.add(Para.of(generator_priority_text(result["generator_priority"], result.get("generator_gc"))))
    if result.get("reproduce"):
        page.add(Heading("Reproduce"), Code(result["reproduce"]))
    files: list[CellLike] = [Cell("history.jsonl", href=HISTORY_FILE), " · ", Cell("result.json", href="result.json"),
                             " · ", Cell("config.json", href="config.json")]
    for label, href in (links or {}).items():
        files += [" · ", Cell(label, href=href)]
    page.add(Heading("Files"), Para.of(*files))
    return page


def client_policy_text(result: Mapping[str, Any]) -> str:
    """The app client's settings (``topologies.clients.ClientPolicy``) and what they cost after a promotion."""
    policy = ", ".join(f"{k}={v}" for k, v in result["client_policy"].items())
    share = ((result.get("metrics") or {}).get("spread") or {}).get("client_share_s")
    cost = (f" After each promotion the clients needed {fmt.spread(share, fmt.secs)} more to be served again."
            if share and share.get("n") else "")
    retry = result.get("pattern_retry")
    if retry is None:
        patterns = ""
    elif retry:
        patterns = " Pattern retry (on top of the client's, per logical operation): " + "; ".join(
            f"{path}: {', '.join(f'{k}={v}' for k, v in p.items())}" for path, p in retry.items()) + "."
    else:
        patterns = " No pattern object in the generator process retries (no RetryPolicy)."
    return (f"Client policy (the scenario's app client; redis-py retries under one call: retries): {policy}."
            f"{patterns}{cost}")


def generator_priority_text(priority: Mapping[str, Any], gc: Mapping[str, Any] | None = None) -> str:
    """What the load generator's threads ran at (:mod:`experiments.priority`) and what the garbage
    collector took from it during the schedule (:mod:`experiments.gc_pauses`)."""
    text = Priority(int(priority["requested_nice"]), int(priority["nice"]), str(priority.get("reason") or "")).text()
    if gc:
        full = int(gc["collections"].get("2", 0))
        longest = max(float(ms) for ms in gc["max_pause_ms"].values())
        text += (f" Garbage collection during the schedule ({gc['frozen_objects']} objects alive at its start "
                 f"frozen out of it): {sum(int(n) for n in gc['collections'].values())} collections, {full} full"
                 f"{' (full passes deferred to its end)' if gc.get('full_collections_deferred') else ''}, "
                 f"the longest {longest:.1f} ms.")
    return text


def hypothesis_text(result: Mapping[str, Any]) -> str:
    h = result["hypothesis"]
    text = (f"Steady-state hypothesis: before the fault and after each heal, availability stays at or above "
            f"{fmt.pct(h['availability_min'])} and p99 at or below {h['p99_max_ms']:g} ms")
    if h.get("during"):
        d = h["during"]
        text += (f"; during the fault, availability at or above {fmt.pct(d['availability_min'])} and p99 at or "
                 f"below {d['p99_max_ms']:g} ms")
    return text + ". The pattern's own claims follow it."
