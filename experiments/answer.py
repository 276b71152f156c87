"""The answer page: "what happens to my app when Redis goes down?", per pattern and per
showcase, from the catalogue's results (``index.md`` / ``index.html``), and the
summary it is built from (``summary.json``, which the README's answer table is
generated from).

Every figure is the median and range over the fault cycles of every run of a row
(``--repeat N`` pools the runs). A difference between two variants of a showcase is
only called a difference when their ranges do not overlap.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import fmt
from .pages import Cell, Grid, Heading, Image, Page, Para, Table
from .run_report import verdict_words
from .stats import Spread

GENERIC_CLAIMS = {"steady_state", "during_fault", "time_to_recover", "send_lag"}


@dataclass
class Row:
    """One row of the answer: a catalogue item and its runs (one per repeat)."""

    section: str
    label: str
    experiment: str
    topology: str
    results: list[dict[str, Any]] = field(default_factory=list)
    run_dirs: list[str] = field(default_factory=list)  # relative to the results directory
    error: str | None = None


def _check(result: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return next((c for c in result.get("checks", []) if c["name"] == name), {"metrics": {}})


def _cycle_metric(part: str, name: str) -> Callable[[Mapping[str, Any]], list[Any]]:
    """Per cycle: ``metrics.cycles[i][part][name]`` (part: ``during`` / ``after``)."""
    return lambda r: [c[part][name] for c in r["metrics"].get("cycles", [])]


EXTRACT: dict[str, Callable[[Mapping[str, Any]], list[Any]]] = {
    "availability_during": _cycle_metric("during", "availability"),
    "p99_during_ms": _cycle_metric("during", "p99_ms"),
    "error_p50_during_ms": _cycle_metric("during", "error_p50_ms"),
    "availability_after": _cycle_metric("after", "availability"),
    "failover_s": lambda r: [f["failover_s"] for f in _check(r, "failover_time")["metrics"].get("failovers", [])],
    "first_success_s": lambda r: [f.get("first_success_s") for f in _check(r, "time_to_recover")["metrics"].get(
        "faults", [])],
    "recover_s": lambda r: [f.get("throughput_s") for f in _check(r, "time_to_recover")["metrics"].get("faults", [])],
    "lost_ratio_in_windows": lambda r: [w["lost_ratio"] for w in _check(r, "lost_writes")["metrics"].get(
        "windows", [])],
}
FORMATS: dict[str, Callable[[float | None], str]] = {
    "availability_during": fmt.pct, "availability_after": fmt.pct, "lost_ratio_in_windows": fmt.pct,
    "p99_during_ms": fmt.ms, "error_p50_during_ms": fmt.ms,
    "failover_s": fmt.secs, "first_success_s": fmt.secs, "recover_s": fmt.secs,
}
LABELS = {"availability_during": "availability during the fault", "p99_during_ms": "p99 of successes during the fault",
          "error_p50_during_ms": "time to error during the fault", "availability_after": "availability after the heal",
          "failover_s": "failover", "first_success_s": "first success after the heal",
          "recover_s": "time to recover", "lost_ratio_in_windows": "acknowledged writes lost within the fault windows"}


def pooled(results: Iterable[Mapping[str, Any]], key: str) -> Spread:
    """A headline figure over every fault cycle of every run."""
    return Spread.of(v for r in results for v in EXTRACT[key](r))


def spread_text(results: Sequence[Mapping[str, Any]], key: str) -> str:
    return fmt.spread(pooled(results, key).to_json(), FORMATS[key])


def row_verdict(row: Row) -> tuple[str, str]:
    """(verdict, words) over the row's runs: the worst verdict, and which claims, in how many runs."""
    if not row.results:
        return "error", f"error: {row.error or 'no run'}"
    verdicts = [r["verdict"] for r in row.results]
    worst = "violated" if "violated" in verdicts else "unknown" if "unknown" in verdicts else "held"
    if len(row.results) == 1:
        return worst, verdict_words(row.results[0])
    n = len(row.results)
    if worst == "held":
        return worst, f"held in all {n} runs"
    bad = [r for r in row.results if r["verdict"] == worst]
    return worst, f"{verdict_words(bad[0])} (in {len(bad)} of {n} runs)"


def findings(row: Row) -> str:
    """What the pattern's own claims found (lost, duplicated, over-admitted ...), from the first run,
    violated claims first; the busiest node's share on the Cluster."""
    if not row.results:
        return row.error or ""
    r = row.results[0]
    claims = [c for c in r.get("claims", []) if c["name"] not in GENERIC_CLAIMS]
    claims.sort(key=lambda c: c["verdict"] != "violated")
    parts = [c["explanation"] for c in claims]
    if not parts:
        parts = [c["explanation"] for c in r.get("measurements", []) if c["name"] == "cache_fallback"]
    load = {node: s.get("ops_per_sec_mean", 0.0) for node, s in (r.get("server") or {}).items()}
    if r.get("topology") == "cluster" and sum(load.values()) > 0:
        busiest = max(load, key=load.__getitem__)
        parts.append(f"Busiest node {busiest} served {100 * load[busiest] / sum(load.values()):.0f}% of the "
                     "commands Redis saw.")
    return " ".join(parts)


HEADERS = ["run", "verdict", "availability during the fault", "p99 of successes during the fault", "failover",
           "time to recover", "what the pattern's claims found", "report"]


def row_cells(row: Row) -> list[Any]:
    verdict, words = row_verdict(row)
    if not row.results:
        return [row.label, Cell(words, tone="unknown"), "", "", "", "", "", ""]
    link = row.run_dirs[0] if row.run_dirs else ""
    runs = "" if len(row.results) == 1 else f" ({len(row.results)} runs)"
    return [row.label + runs, Cell(words, tone=verdict), spread_text(row.results, "availability_during"),
            spread_text(row.results, "p99_during_ms"), spread_text(row.results, "failover_s"),
            spread_text(row.results, "recover_s"), findings(row),
            Cell("report", href=f"{link}/report.html") if link else ""]


CLAIM_LABELS = {  # short names of the claims, for one-line answers
    "steady_state": "steady state", "during_fault": "served through the fault", "time_to_recover": "recovery",
    "send_lag": "generator on schedule", "lost_writes": "no acknowledged write lost",
    "counter": "no increment lost", "leaderboard_increments": "no increment lost",
    "cache_stale_reads": "staleness bound", "cache_read_your_writes": "read-your-writes",
    "lock_overlap": "one holder at a time", "fencing": "fencing", "rate_limit": "no over-admission",
    "false_rejections": "no false rejection", "queue_delivery": "no message lost", "proximity_results": "fresh answers",
    "persistence_loss": "loss as published", "dataset_after_restart": "dataset as published",
    "expectation": "as published", "failover_expected": "failover as published",
    "replica_staleness": "replica staleness bound", "cache_vs_database": "cache helps as predicted",
}


def short_verdict(row: Row) -> str:
    """``held``, ``violated: <short claim names>`` or ``undecided: ...``, for one-line answers."""
    verdict, _ = row_verdict(row)
    if verdict in ("held", "error"):
        return verdict
    key = "violated" if verdict == "violated" else "undecided"
    names = sorted({CLAIM_LABELS.get(c["name"], c["name"]) for r in row.results
                    for c in r.get(key if key == "violated" else "undecided", [])})
    problems = sorted({p for r in row.results for p in r.get("run_problems", [])})
    return f"{'violated' if key == 'violated' else 'undecided'}: {', '.join(names + problems)}"


# the claims that judge a published (or, for the thin pipe, a computed) expectation: held means reproduced
PUBLISHED_CLAIMS = {"persistence_loss", "dataset_after_restart", "expectation", "failover_expected",
                    "replica_staleness", "cache_vs_database"}


def published(row: Row) -> tuple[str, str] | None:
    """(``reproduced`` / ``not reproduced`` / ``undecided``, what happened in words) for a row whose
    claims judge a published expectation; None for the others. ``reproduced``: every such claim held in
    every run; ``not reproduced``: one was violated. The words are those claims' evidence (what was
    published, what the lab saw, whether they match), from the first run showing the worst verdict."""
    found = [(r, c) for r in row.results for c in r.get("checks", []) if c["name"] in PUBLISHED_CLAIMS]
    if not found:
        return None
    verdicts = [c["verdict"] for _r, c in found]
    worst = "violated" if "violated" in verdicts else "unknown" if "unknown" in verdicts else "held"
    word = {"violated": "not reproduced", "unknown": "undecided", "held": "reproduced"}[worst]
    run = next(r for r, c in found if c["verdict"] == worst)
    text = " ".join(c.get("explanation", "") for r, c in found if r is run).strip()
    n = len(row.results)
    if n > 1:
        bad = sum(1 for r in row.results if any(c["verdict"] == worst for c in r.get("checks", [])
                                                 if c["name"] in PUBLISHED_CLAIMS))
        text += f" ({word} in {bad} of {n} runs)" if worst != "held" else f" (in all {n} runs)"
    return word, text


def published_words(row: Row) -> str:
    """``; as published: reproduced`` (every claim judging a published expectation held in every run),
    ``not reproduced`` (one was violated) or ``undecided``; empty for rows without such a claim."""
    found = published(row)
    return f"; as published: {found[0]}" if found else ""


def pattern_line(rows: Sequence[Row]) -> str:
    """The section's answer in one line of words and numbers: per row, the share of requests served
    during the fault, the failover, and which claims did not hold."""
    parts = []
    for row in rows:
        if not row.results:
            parts.append(f"{row.label}: no run ({row.error})")
            continue
        fo = pooled(row.results, "failover_s")
        parts.append(f"{row.label}: {spread_text(row.results, 'availability_during')} served"
                     + (f", failover {fmt.spread(fo.to_json(), fmt.secs)}" if fo.n else "")
                     + f" ({short_verdict(row)}{published_words(row)})")
    return "; ".join(parts) + "." if parts else "No run completed."


def compare(rows: Sequence[Row], key: str) -> list[str]:
    """Each pair of variants on ``key``: a difference only when their ranges do not overlap."""
    spreads = [(r.label, pooled(r.results, key)) for r in rows if r.results]
    out = []
    for i, (a, sa) in enumerate(spreads):
        for b, sb in spreads[i + 1:]:
            if not sa.n or not sb.n:
                continue
            verdict = ("not distinguishable (ranges overlap)" if sa.overlaps(sb)
                       else "a difference (ranges do not overlap)")
            out.append(f"{a} vs {b}: {LABELS[key]} {fmt.spread(sa.to_json(), FORMATS[key])} vs "
                       f"{fmt.spread(sb.to_json(), FORMATS[key])}: {verdict}.")
    return out


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    question: str
    compare: str | None = None  # the headline key the variants are compared on


def answer_page(sections: Sequence[Section], rows: Sequence[Row], header: str) -> Page:
    """``index.md`` / ``index.html``: per section, the answer in words, a table, the timelines."""
    page = Page("What happens to my app when Redis goes down?")
    page.add(Para.of(header), Para.of(
        "Verdict words: held (every claim held), violated: <the claim> (that is the evidence, not a lab "
        "error), undecided (why). Figures are medians with their range over fault cycles (n = cycles x runs). ",
        Cell("every run", href="runs.html")))
    for sec in sections:
        mine = [r for r in rows if r.section == sec.key]
        if not mine:
            continue
        page.add(Heading(sec.title))
        if sec.question:
            page.add(Para.of(sec.question))
        page.add(Para.of(pattern_line(mine)))
        if sec.compare:
            diffs = compare(mine, sec.compare)
            if diffs:
                page.add(Para.of("Compared: " + " ".join(diffs)))
        t = Table(HEADERS)
        for r in mine:
            t.add(*row_cells(r))
        page.add(t)
        plots = tuple((Image(f"{r.run_dirs[0]}/timeline.png", f"timeline of {r.label}"), r.label,
                       f"{r.run_dirs[0]}/report.html") for r in mine if r.run_dirs)
        if plots:
            page.add(Grid(plots))
    return page


def _published_fields(row: Row) -> dict[str, str]:
    """``published`` (reproduced / not reproduced / undecided) and ``published_text`` (what happened),
    only for rows judging a published expectation."""
    found = published(row)
    return {"published": found[0], "published_text": found[1]} if found else {}


def summary(rows: Sequence[Row], meta: Mapping[str, Any]) -> dict[str, Any]:
    """The answer as data (``summary.json``): what the README's table is generated from."""
    out = []
    for r in rows:
        verdict, words = row_verdict(r)
        out.append({"section": r.section, "label": r.label, "experiment": r.experiment, "topology": r.topology,
                    "runs": len(r.results), "verdict": verdict, "verdict_words": words,
                    **{k: pooled(r.results, k).to_json() for k in EXTRACT}, "findings": findings(r),
                    **_published_fields(r),
                    "send_lag_p99_ms": max((res["metrics"].get("send_lag_p99_ms") or 0 for res in r.results),
                                           default=None)})
    return {**meta, "rows": out}
