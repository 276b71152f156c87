"""The catalogue: every pattern through kill / latency / partition, plus the showcases,
run in one go (`make demo`, `redislab demo`), answered in ``index.md`` / ``index.html``
(``experiments.answer``) from ``summary.json``.

``quick`` runs each pattern's matrix row on one topology (Sentinel where the pattern
runs there) and every showcase; ``full`` runs the matrix on every topology.
Showcases compare their mitigations side by side: the variants run one after the
other with the same seed, schedule and fault, and one table compares them.
``repeat`` runs every item that many times (seeds 1..N) and pools their cycles.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from experiments import registry
from experiments.answer import Row, Section, answer_page, summary
from experiments.faultplans import FAULT_PLANS
from experiments.pages import html, markdown
from experiments.report import RESULT_FILE, TIMELINE_FILE, write_index
from experiments.runner import RunRequest, run_experiment
from labcommon.errors import LabError, UnknownNameError
from topologies import api
from topologies.spec import TOPOLOGIES

PROFILES = ("quick", "full")
SUMMARY_FILE = "summary.json"
MAX_REPEAT = 20


@dataclass(frozen=True)
class Showcase:
    key: str
    title: str
    question: str
    variants: tuple[tuple[str, str, str], ...]  # (label, experiment, topology)
    compare: str | None = None  # the headline figure the variants are compared on (experiments.answer.EXTRACT)
    quick: bool = True  # also in the quick profile (CI); False: the full profile only


SHOWCASES: tuple[Showcase, ...] = (
    Showcase("degradation", "Degradation", "Redis is down: what does each fallback strategy cost?",
             (("no fallback", "degradation-none", "single"), ("database fallback", "degradation-db", "single"),
              ("fallback + breaker", "degradation-db-breaker", "single")), "availability_during"),
    Showcase("breaker", "Circuit breaking", "The primary is slow (latency above the client timeout): "
             "do requests pile up on timeouts, and does a breaker help?",
             (("no breaker", "breaker-off", "single"), ("breaker", "breaker-on", "single")), "p99_during_ms"),
    Showcase("lock-expiry", "Lock expiry", "The lock holder is paused beyond the TTL: two holders? "
             "Does fencing protect the resource?",
             (("fencing token", "lock-expiry-fenced", "single"), ("no fencing", "lock-expiry-unfenced", "single"),
              ("naive INCR lock", "lock-expiry-naive", "single"),
              ("Redlock, 5 nodes", "lock-expiry-redlock", "redlock"))),
    Showcase("stream-retries", "Stream retries", "A consumer dies mid-batch, or the primary fails over: "
             "is anything lost, how much is redelivered?",
             (("consumer killed", "queue-consumer-kill", "single"), ("primary killed", "work-queue-kill", "sentinel")),
             "availability_during"),
    Showcase("split-brain", "Split-brain write loss", "The primary is partitioned with some clients "
             "(Jepsen 2013): how many acknowledged writes are lost?",
             (("no mitigation", "splitbrain-plain", "sentinel"),
              ("min-replicas-to-write 1", "splitbrain-min-replicas", "sentinel"),
              ("WAIT 1", "splitbrain-wait", "sentinel")), "lost_ratio_in_windows"),
    Showcase("cluster-failover", "Cluster failover", "A Cluster primary dies under a counter workload: "
             "errors, lost writes, time to recover? And with a hot key: load per node (each report's "
             "'What Redis saw'), with and without a near cache?",
             (("1000 counters", "cluster-counter-kill", "cluster"),
              ("hot key, no relief", "hotkey-plain", "cluster"),
              ("hot key, near cache", "hotkey-near-cache", "cluster"),
              ("hot key, its node's link saturated", "hotkey-bandwidth", "cluster")), "availability_during"),
    Showcase("rate-limiter-failover", "Rate limiting under failover", "The primary dies: over-admission "
             "or false rejections?",
             (("fail open", "rate-limiter-failover-open", "sentinel"), ("fail closed", "rate-limiter-failover-closed",
                                                                       "sentinel"),
              ("local fallback", "rate-limiter-failover-local", "sentinel"))),
    Showcase("memory", "Memory limits", "maxmemory squeezed under the cache: LRU eviction or noeviction?",
             (("allkeys-lru", "memory-allkeys-lru", "single"), ("noeviction", "memory-noeviction", "single")),
             "availability_during"),
    Showcase("persistence", "Persistence: what survives a crash", "A single node under writes is SIGKILLed and "
             "restarted. Published (Redis persistence docs): no persistence loses everything, RDB the writes since "
             "the last snapshot, AOF everysec about a second, AOF always nothing. What did each lose, how long did "
             "the restart take, what does each cost in write latency?",
             (("no persistence", "persistence-none", "single"), ("RDB every 2 s", "persistence-rdb", "single"),
              ("AOF everysec", "persistence-aof-everysec", "single"),
              ("AOF always", "persistence-aof-always", "single")), "first_success_s"),
    Showcase("empty-primary-restart", "A primary restarted empty", "A Sentinel primary without persistence is "
             "restarted faster than Sentinel detects it (the Redis replication docs warn about this): do the "
             "replicas wipe their copy? Dataset size per node before and after, with persistence on, and with a "
             "restart slower than detection.",
             (("no persistence, restarted after 100 ms", "empty-primary-restart", "sentinel"),
              ("AOF on, restarted after 100 ms", "empty-primary-restart-aof", "sentinel"),
              ("no persistence, restarted after 3 s", "empty-primary-restart-slow", "sentinel"))),
    Showcase("manual-failover", "Planned failover", "A manual SENTINEL FAILOVER (redis/redis issue 6062 reports "
             "acknowledged writes lost) with clients still connected to the old primary, and the Cluster's "
             "manual CLUSTER FAILOVER, which should lose none: how many acknowledged writes are lost?",
             (("Sentinel, no mitigation", "manual-failover-plain", "sentinel"),
              ("Sentinel, min-replicas-to-write 1", "manual-failover-min-replicas", "sentinel"),
              ("Sentinel, WAIT 1", "manual-failover-wait", "sentinel"),
              ("Cluster, CLUSTER FAILOVER", "cluster-manual-failover", "cluster")), "lost_ratio_in_windows"),
    Showcase("rolling-restart", "Rolling restart", "Every node restarted in turn, the primary failed over first by "
             "a shutdown hook (bitnami/charts issue 12598 reports acknowledged writes lost): how many, with and "
             "without min-replicas-to-write and WAIT?",
             (("no mitigation", "rolling-restart-plain", "sentinel"),
              ("min-replicas-to-write 1", "rolling-restart-min-replicas", "sentinel"),
              ("WAIT 1", "rolling-restart-wait", "sentinel")), "lost_ratio_in_windows", quick=False),
    Showcase("stalled-thread", "A stalled thread", "The primary's one thread kept busy (a long Lua script, DEBUG "
             "SLEEP, KEYS over a million keys) under cache-aside with fallback + breaker: what does every client "
             "see, does Sentinel or the Cluster fail over, and should it?",
             (("Lua script (BUSY)", "stall-lua", "sentinel"), ("DEBUG SLEEP", "stall-debug-sleep", "sentinel"),
              ("KEYS *", "stall-keys", "sentinel"), ("DEBUG SLEEP on the Cluster", "stall-debug-sleep-cluster",
                                                      "cluster")), "p99_during_ms", quick=False),
    Showcase("bandwidth", "A thin pipe", "The primary's link limited to 1000 KB/s per connection under "
             "cache-aside reads of 1 KiB to 1 MiB values: throughput, p99, timeouts, and from which size is the "
             "database faster than the cache?",
             (("1 KiB values", "bandwidth-1k", "single"), ("16 KiB values", "bandwidth-16k", "single"),
              ("128 KiB values", "bandwidth-128k", "single"), ("1 MiB values", "bandwidth-1m", "single")),
             "p99_during_ms", quick=False),
    Showcase("quorum-and-replication", "Quorum and replication", "Two of three Sentinels down when the primary "
             "dies; replica reads while replication lags; slots migrating under load: does each behave as "
             "published?",
             (("Sentinel quorum lost", "sentinel-quorum-lost", "sentinel"),
              ("replica reads, replication 500 ms behind", "replica-read-lag", "sentinel"),
              ("Cluster resharding", "cluster-reshard", "cluster")), quick=False),
)


@dataclass(frozen=True)
class Item:
    """One row of the catalogue."""

    section: str  # pattern name or showcase key
    label: str  # row label: "kill on sentinel", "fencing token" ...
    experiment: str
    topology: str


def plan(profile: str) -> list[Item]:
    """The rows of a profile, grouped by topology (fewer restarts)."""
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
        if profile == "quick" and not sc.quick:
            continue
        for label, exp, top in sc.variants:
            if exp in registry.EXPERIMENTS:
                items.append(Item(sc.key, label, exp, top))
    order = {name: n for n, name in enumerate(TOPOLOGIES)}  # one topology up at a time, each once
    return sorted(items, key=lambda i: order[i.topology])


def sections() -> list[Section]:
    return ([Section(p, f"{p}: what if Redis goes down?", "") for p in registry.LOADS]
            + [Section(sc.key, f"Showcase: {sc.title}", sc.question, sc.compare) for sc in SHOWCASES])


@dataclass
class Outcome:
    """The runs of one row (one per repeat), or why it has none."""

    item: Item
    run_dirs: list[Path] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def run_catalogue(profile: str, backend: str, out: str, console: Console | None = None,
                  only: Callable[[Item], bool] = lambda i: True, repeat: int = 1,
                  command: str = "", workers: int = 1, target: str | None = None,
                  skipped: list[str] | None = None) -> tuple[list[Outcome], Path]:
    """Run the catalogue; returns every outcome and the path of ``index.md``. A run that fails
    to start is recorded as an error and the others go on. ``workers``: generator processes
    for the rows whose scenario runs in several (``Scenario.parallel``); the others run in one.
    ``target``: a target file; the rows that can run on that existing deployment run there (no
    topology is started or stopped), the others are appended to ``skipped`` with the reason."""
    if not 1 <= repeat <= MAX_REPEAT:
        raise LabError(f"--repeat {repeat} is out of range; accepted: 1..{MAX_REPEAT}")
    console = console or Console(stderr=True)
    items = [i for i in plan(profile) if only(i)]
    if not items:
        raise LabError("--only selects nothing", "name patterns or showcases: " +
                       ", ".join(sorted({i.section for i in plan(profile)})))
    if target is not None:
        items = _runnable_on(target, items, skipped if skipped is not None else [])
    else:
        current = api.current()
        if current is not None and current.backend.owns_anything():
            raise LabError("a topology is already up", "run `redislab down` first: the demo brings up its own")
    started = time.monotonic()
    done: dict[tuple[str, str], Outcome] = {}  # one row's runs serve every section that lists it
    outcomes: list[Outcome] = []
    keys = list(dict.fromkeys((i.experiment, i.topology) for i in items))
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("demo", total=len(keys) * repeat)
        try:
            for item in items:
                key = (item.experiment, item.topology)
                if key not in done:
                    outcome = Outcome(item)
                    for seed in range(1, repeat + 1):
                        progress.update(task, description=f"{item.experiment} on {item.topology}"
                                        + (f" (run {seed}/{repeat})" if repeat > 1 else ""))
                        _run_one(outcome, profile, backend, out, seed, workers, target)
                        progress.advance(task)
                    done[key] = outcome
                outcomes.append(Outcome(item, done[key].run_dirs, done[key].results, done[key].error))
        finally:
            if target is None:
                api.down()
    index = write_answer(Path(out), outcomes, _meta(profile, backend, repeat, time.monotonic() - started, command))
    return outcomes, index


def _runnable_on(target_file: str, items: list[Item], skipped: list[str]) -> list[Item]:
    """The rows that can run on the target (one run per experiment), noting the others in ``skipped``."""
    from experiments.target_fit import runnable
    from targets.target import open_target
    topo = open_target(target_file)
    kind = topo.target.kind
    kept: list[Item] = []
    for item in items:
        ok, why = runnable(topo, registry.get(item.experiment))
        if not ok:
            if f"{item.experiment}: {why}" not in skipped:
                skipped.append(f"{item.experiment}: {why}")
        elif not any(k.experiment == item.experiment and k.section == item.section for k in kept):
            label = item.label.replace(f" on {item.topology}", f" on {kind}")
            kept.append(Item(item.section, label, item.experiment, kind))  # the target's kind, not the row's
    if not kept:
        raise LabError(f"no row of the catalogue can run on target {topo.target.name}",
                       f"see why: redislab list --target {target_file}")
    return kept


def _run_one(outcome: Outcome, profile: str, backend: str, out: str, seed: int, workers: int = 1,
             target: str | None = None) -> None:
    """One run of ``outcome``'s row. On the lab's own topologies the right one is brought up first
    and a broken one taken down; on a ``target`` (an existing deployment) nothing is started or stopped."""
    item = outcome.item
    exp = registry.get(item.experiment)
    own = exp.topology_options is not None  # the run starts its own topology
    if target is None:
        current = api.current()
        if current is not None and (current.name != item.topology or own):
            api.down()
    where: dict[str, Any] = ({"target": target} if target is not None
                             else {"topology": item.topology, "backend": backend})
    try:
        if target is None and api.current() is None and not own:
            api.up(item.topology, backend=backend)
        run_dir = run_experiment(RunRequest(item.experiment, profile=profile, out=out, progress=False, seed=seed,
                                            workers=workers if exp.scenario.parallel else 1, **where))
        outcome.run_dirs.append(run_dir)
        outcome.results.append(json.loads((run_dir / RESULT_FILE).read_text()))
    except Exception as exc:  # noqa: BLE001 - one broken run must not stop the catalogue; it is reported
        outcome.error = exc.line() if isinstance(exc, LabError) else f"{type(exc).__name__}: {exc}"
        if target is None:
            api.down()  # a broken topology is rebuilt for the next run


def _meta(profile: str, backend: str, repeat: int, elapsed_s: float, command: str) -> dict[str, Any]:
    """Where and how the answer was produced (for the README and whoever quotes it)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=5, cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"command": command or f"redislab demo --profile {profile} --backend {backend}"
            + (f" --repeat {repeat}" if repeat > 1 else ""),
            "profile": profile, "backend": backend, "repeat": repeat, "commit": commit,
            "date": time.strftime("%Y-%m-%d"), "elapsed_min": round(elapsed_s / 60, 1),
            "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()} {platform.release()}"}


def write_answer(out: Path, outcomes: list[Outcome], meta: dict[str, Any]) -> Path:
    """``summary.json``, ``index.md`` + ``index.html`` (the answer) and ``runs.md`` / ``runs.html``."""
    write_index(out)
    rows = [Row(o.item.section, o.item.label, o.item.experiment, o.item.topology, o.results,
                [str(d.relative_to(out)) if d.is_relative_to(out) else str(d) for d in o.run_dirs], o.error)
            for o in outcomes]
    data = summary(rows, meta)
    (out / SUMMARY_FILE).write_text(json.dumps(data, indent=2) + "\n")
    verdicts = [r["verdict"] for r in data["rows"]]
    header = (f"{len(rows)} rows from {len({(r.experiment, r.topology) for r in rows})} experiments, "
              f"{sum(len(r.results) for r in rows)} runs ({meta['profile']} profile, {meta['backend']} backend) in "
              f"{meta['elapsed_min']} min: " + ", ".join(f"{verdicts.count(v)} {v}" for v in
                                                         ("held", "violated", "unknown", "error")
                                                         if verdicts.count(v))
              + f". Produced by `{meta['command']}` on {meta['date']} ({meta['machine']}, commit {meta['commit']}).")
    page = answer_page(sections(), rows, header)
    (out / "index.md").write_text(markdown(page))
    (out / "index.html").write_text(html(page))
    return out / "index.md"


def rerender(out: Path) -> Path:
    """Rebuild the answer page of a catalogue directory from its runs (after the lab's pages or
    checks changed): each run's report is re-rendered from its history, then the rows are
    matched to the plan by experiment and topology."""
    from experiments.report import render_run
    meta = json.loads((out / SUMMARY_FILE).read_text()) if (out / SUMMARY_FILE).exists() else {}
    meta.pop("rows", None)
    runs: dict[tuple[str, str], Outcome] = {}
    for rj in sorted(out.glob(f"*/{RESULT_FILE}")):
        result = render_run(rj.parent)
        key = (str(result.get("experiment")), str(result.get("topology")))
        runs.setdefault(key, Outcome(Item("", "", *key))).run_dirs.append(rj.parent)
        runs[key].results.append(result)
    profile = str(meta.get("profile", "quick"))
    outcomes = [Outcome(i, runs[(i.experiment, i.topology)].run_dirs, runs[(i.experiment, i.topology)].results)
                for i in plan("full" if profile == "full" else "quick") if (i.experiment, i.topology) in runs]
    meta = {"command": "", "profile": profile, "backend": "?", "repeat": 1, "commit": None, "date": "?",
            "elapsed_min": 0, "machine": "?", **meta}
    return write_answer(out, outcomes, meta)


def verify(out: Path) -> list[str]:
    """Problems with a catalogue's output: every run must have a verdict, its checks and its plot."""
    problems = []
    runs = sorted(p.parent for p in out.glob(f"*/{RESULT_FILE}"))
    if not runs:
        problems.append(f"no runs under {out}")
    for run in runs:
        r = json.loads((run / RESULT_FILE).read_text())
        if r.get("verdict") not in ("held", "violated", "unknown"):
            problems.append(f"{run.name}: no verdict")
        if not r.get("checks"):
            problems.append(f"{run.name}: no checks")
        if not (run / TIMELINE_FILE).is_file() or (run / TIMELINE_FILE).read_bytes()[:4] != b"\x89PNG":
            problems.append(f"{run.name}: no plot")
    if not (out / "index.md").exists() or not (out / "index.html").exists():
        problems.append("no index.md / index.html")
    return problems
