"""The catalogue: every pattern through kill / latency / partition, plus the showcases,
run in one go (`make demo`, `redislab demo`), answered in ``results/index.md`` / ``.html``.

``quick`` runs each pattern's matrix row on one topology (Sentinel where the pattern
runs there) and every showcase; ``full`` runs the matrix on every topology.
Showcases compare their mitigations side by side: the variants run one after the
other with the same seed, schedule and fault, and one table compares them.
"""
from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from experiments import registry
from experiments.faultplans import FAULT_PLANS
from experiments.model import GENERIC_CHECKS
from experiments.report import RESULT_FILE, write_index
from experiments.runner import RunRequest, run_experiment
from topologies import api
from topologies.errors import LabError, UnknownNameError

PROFILES = ("quick", "full")


@dataclass(frozen=True)
class Showcase:
    key: str
    title: str
    question: str
    variants: tuple[tuple[str, str, str], ...]  # (label, experiment, topology)


SHOWCASES: tuple[Showcase, ...] = (
    Showcase("degradation", "Degradation", "Redis is down: what does each fallback strategy cost?",
             (("no fallback", "degradation-none", "single"), ("database fallback", "degradation-db", "single"),
              ("fallback + breaker", "degradation-db-breaker", "single"))),
    Showcase("breaker", "Circuit breaking", "The primary is slow (latency above the client timeout): "
             "do requests pile up on timeouts, and does a breaker help?",
             (("no breaker", "breaker-off", "single"), ("breaker", "breaker-on", "single"))),
    Showcase("lock-expiry", "Lock expiry", "The lock holder is paused beyond the TTL: two holders? "
             "Does fencing protect the resource?",
             (("fencing token", "lock-expiry-fenced", "single"), ("no fencing", "lock-expiry-unfenced", "single"),
              ("naive INCR lock", "lock-expiry-naive", "single"))),
    Showcase("stream-retries", "Stream retries", "A consumer dies mid-batch, or the primary fails over: "
             "is anything lost, how much is redelivered?",
             (("consumer killed", "queue-consumer-kill", "single"), ("primary killed", "work-queue-kill", "sentinel"))),
    Showcase("split-brain", "Split-brain write loss", "The primary is partitioned with some clients "
             "(Jepsen 2013): how many acknowledged writes are lost?",
             (("no mitigation", "splitbrain-plain", "sentinel"),
              ("min-replicas-to-write 1", "splitbrain-min-replicas", "sentinel"),
              ("WAIT 1", "splitbrain-wait", "sentinel"))),
    Showcase("cluster-failover", "Cluster failover", "A Cluster primary dies under a counter workload: "
             "errors, lost writes, time to recover? And with a hot key: load per node (each report's "
             "'What Redis saw'), with and without a near cache?",
             (("1000 counters", "cluster-counter-kill", "cluster"),
              ("hot key, no relief", "hotkey-plain", "cluster"),
              ("hot key, near cache", "hotkey-near-cache", "cluster"))),
    Showcase("ratelimit-failover", "Rate limiting under failover", "The primary dies: over-admission "
             "or false rejections?",
             (("fail open", "ratelimit-failover-open", "sentinel"), ("fail closed", "ratelimit-failover-closed",
                                                                       "sentinel"),
              ("local fallback", "ratelimit-failover-local", "sentinel"))),
    Showcase("memory", "Memory limits", "maxmemory squeezed under the cache: LRU eviction or noeviction?",
             (("allkeys-lru", "memory-allkeys-lru", "single"), ("noeviction", "memory-noeviction", "single"))),
)

NOT_FAILING_OVER = {
    "single": "single node, no replica: a kill or an isolation is an outage until the node is back; "
              "the row shows how long and what the pattern did meanwhile",
}


@dataclass(frozen=True)
class Item:
    """One run of the catalogue."""

    section: str  # pattern name or showcase key
    label: str  # row label: "kill on sentinel", "fencing token" ...
    experiment: str
    topology: str


def plan(profile: str) -> list[Item]:
    """The runs of a profile, grouped by topology (fewer restarts)."""
    if profile not in PROFILES:
        raise UnknownNameError("profile", profile, PROFILES)
    items: list[Item] = []
    for load in registry.LOADS.values():
        tops = load.topologies if profile == "full" else (
            ("sentinel",) if "sentinel" in load.topologies else load.topologies[:1])
        for top in tops:
            for fault in FAULT_PLANS:
                items.append(Item(load.pattern, f"{fault} on {top}", f"{load.pattern}-{fault}", top))
    for sc in SHOWCASES:
        for label, exp, top in sc.variants:
            if exp in registry.EXPERIMENTS:
                items.append(Item(sc.key, label, exp, top))
    order = {"single": 0, "sentinel": 1, "cluster": 2}
    return sorted(items, key=lambda i: order[i.topology])


@dataclass
class Outcome:
    item: Item
    run_dir: Path | None
    result: dict[str, Any] | None
    error: str | None = None


def run_catalogue(profile: str, backend: str, out: str, console: Console | None = None,
                  only: Callable[[Item], bool] = lambda i: True) -> tuple[list[Outcome], Path]:
    """Run the catalogue; returns every outcome and the path of ``index.md``."""
    console = console or Console(stderr=True)
    items = [i for i in plan(profile) if only(i)]
    if api.current() is not None and api.current().backend.owns_anything():  # type: ignore[union-attr]
        raise LabError("a topology is already up", "run `redislab down` first: the demo brings up its own")
    outcomes: list[Outcome] = []
    started = time.monotonic()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("demo", total=len(items))
        done: dict[tuple[str, str], Outcome] = {}  # one run serves every section that lists it
        try:
            for item in items:
                progress.update(task, description=f"{item.experiment} on {item.topology}")
                key = (item.experiment, item.topology)
                if key not in done:
                    done[key] = _run_one(item, profile, backend, out)
                outcomes.append(Outcome(item, done[key].run_dir, done[key].result, done[key].error))
                progress.advance(task)
        finally:
            api.down()
    index = write_catalogue_index(Path(out), outcomes, profile, time.monotonic() - started)
    return outcomes, index


def _run_one(item: Item, profile: str, backend: str, out: str) -> Outcome:
    current = api.current()
    if current is not None and current.name != item.topology:
        api.down()
    try:
        if api.current() is None:
            api.up(item.topology, backend=backend)
        run_dir = run_experiment(RunRequest(item.experiment, topology=item.topology, backend=backend,
                                            profile=profile, out=out, progress=False))
        return Outcome(item, run_dir, json.loads((run_dir / RESULT_FILE).read_text()))
    except LabError as exc:
        api.down()  # a broken topology is rebuilt for the next run
        return Outcome(item, None, None, exc.line())


# -- the answer page ----------------------------------------------------------------------------
def _check(result: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((c for c in result.get("checks", []) if c["name"] == name), None)


def _findings(result: dict[str, Any]) -> str:
    """The pattern-specific checks' explanations: what was lost, duplicated, over-admitted ..."""
    generic = set(GENERIC_CHECKS)
    parts = [f"{c['name']}: {c['explanation']}" for c in result.get("checks", []) if c["name"] not in generic]
    load = {node: s.get("ops_per_sec_mean", 0.0) for node, s in (result.get("server") or {}).items()}
    if result.get("topology") == "cluster" and sum(load.values()) > 0:
        busiest = max(load, key=load.__getitem__)
        parts.append(f"Busiest node {busiest} served {100 * load[busiest] / sum(load.values()):.0f}% "
                     "of the commands Redis saw.")
    return " ".join(parts) or "n/a"


def _row(o: Outcome, out: Path) -> list[str]:
    if o.result is None:
        return [o.item.label, "ERROR", "", "", "", "", o.error or "", ""]
    m = o.result["metrics"]
    fault = m.get("during_fault") or {}
    failover = (_check(o.result, "failover_time") or {}).get("metrics", {}).get("failover_s")
    rec = m.get("time_to_recover_s")
    link = str(o.run_dir.relative_to(out)) if o.run_dir else ""
    outage = o.item.label.startswith(("kill", "partition")) or o.item.section == "degradation"
    note = NOT_FAILING_OVER.get(o.item.topology, "") if outage and failover is None else ""
    return [o.item.label, o.result["verdict"].upper(), _pct(fault.get("availability")), _ms(fault.get("p99_ms")),
            "n/a" if failover is None else f"{failover:.1f} s", "n/a" if rec is None else f"{rec:.1f} s",
            _findings(o.result) + (f" ({note})" if note else ""), link]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0f} ms"


HEADERS = ["run", "verdict", "availability during fault", "p99 during fault", "failover", "time to recover",
           "what was lost, duplicated or over-admitted", "report"]


def write_catalogue_index(out: Path, outcomes: list[Outcome], profile: str, elapsed_s: float) -> Path:
    """``index.md`` + ``index.html``: the answer per pattern and per showcase, then every run."""
    write_index(out)  # the list of every run, kept as runs.md / runs.html below
    (out / "index.md").replace(out / "runs.md")
    (out / "index.html").replace(out / "runs.html")
    sections: list[tuple[str, str, list[list[str]]]] = []
    for pattern in registry.LOADS:
        rows = [_row(o, out) for o in outcomes if o.item.section == pattern]
        if rows:
            sections.append((f"{pattern}: what if Redis goes down?", "", rows))
    for sc in SHOWCASES:
        rows = [_row(o, out) for o in outcomes if o.item.section == sc.key]
        if rows:
            sections.append((f"Showcase: {sc.title}", sc.question, rows))
    verdicts = [o.result["verdict"] if o.result else "error" for o in outcomes]
    runs = len({o.run_dir for o in outcomes if o.run_dir} | {o.item for o in outcomes if not o.run_dir})
    summary = (f"{len(outcomes)} rows from {runs} runs ({profile} profile) in {elapsed_s / 60:.1f} min: "
               + ", ".join(f"{verdicts.count(v)} {v}" for v in ("pass", "fail", "unknown", "error")
                           if verdicts.count(v))
               + ". FAIL means an invariant or the steady-state hypothesis was violated: that is the evidence, "
                 "not a lab error. Every run's report explains its numbers; all runs: [runs.md](runs.md).")
    md = ["# What happens to my app when Redis goes down?", "", summary, ""]
    for title, question, rows in sections:
        md += [f"## {title}", ""] + ([question, ""] if question else [])
        md += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        for r in rows:
            cells = [c.replace("|", "/") for c in r[:-1]] + [f"[report]({r[-1]}/report.md) · "
                                                             f"[plot]({r[-1]}/timeline.png)" if r[-1] else ""]
            md.append("| " + " | ".join(cells) + " |")
        md.append("")
    (out / "index.md").write_text("\n".join(md))
    e = html.escape
    body = [f"<h1>What happens to my app when Redis goes down?</h1><p>{e(summary)}</p>"]
    for title, question, rows in sections:
        body.append(f"<h2>{e(title)}</h2>" + (f"<p>{e(question)}</p>" if question else ""))
        body.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in HEADERS) + "</tr>")
        for r in rows:
            links = (f'<a href="{e(r[-1])}/report.md">report</a> · <a href="{e(r[-1])}/timeline.png">plot</a>'
                     if r[-1] else "")
            body.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r[:-1]) + f"<td>{links}</td></tr>")
        body.append("</table>")
    (out / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>redis-failure-lab</title><style>"
        "body{font-family:sans-serif;max-width:1400px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}</style></head><body>"
        + "".join(body) + "<p><a href='runs.html'>every run</a></p></body></html>\n")
    return out / "index.md"


def verify(out: Path) -> list[str]:
    """Problems with a catalogue's output: every run must have a verdict, its checks and its plot."""
    problems = []
    runs = sorted(p.parent for p in out.glob(f"*/{RESULT_FILE}"))
    if not runs:
        problems.append(f"no runs under {out}")
    for run in runs:
        r = json.loads((run / RESULT_FILE).read_text())
        if r.get("verdict") not in ("pass", "fail", "unknown"):
            problems.append(f"{run.name}: no verdict")
        if not r.get("checks"):
            problems.append(f"{run.name}: no checks")
        if not (run / "timeline.png").is_file() or (run / "timeline.png").read_bytes()[:4] != b"\x89PNG":
            problems.append(f"{run.name}: no plot")
    if not (out / "index.md").exists() or not (out / "index.html").exists():
        problems.append("no index.md / index.html")
    return problems
