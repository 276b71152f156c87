"""A run directory's files: ``result.json`` (``experiments.analysis``),
``timeline.png`` (``experiments.plot``), ``report.md`` and ``report.html``
(``experiments.run_report`` through ``experiments.pages``), and the list of every
run under a results directory (``runs.md`` / ``runs.html``).

Everything is derived from ``history.jsonl``; ``config.json`` only says what
was run and what to check. Re-rendering a run directory reproduces its report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import fmt
from .analysis import analyze
from .history import History, read_history
from .pages import Cell, Page, Para, Table, html, markdown
from .plot import render_timeline
from .run_report import HISTORY_FILE, TIMELINE_FILE, run_page, verdict_words

RESULT_FILE = "result.json"
REPORT_FILE = "report.md"
REPORT_HTML = "report.html"
CONFIG_FILE = "config.json"
RUNS_FILE = "runs"  # runs.md / runs.html: every run under a results directory

__all__ = [
    "CONFIG_FILE",
    "HISTORY_FILE",
    "REPORT_FILE",
    "REPORT_HTML",
    "RESULT_FILE",
    "TIMELINE_FILE",
    "load_run",
    "render_run",
    "write_index",
]


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], History]:
    """``config.json`` (empty if absent) and the history of a run directory."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_FILE
    config = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    config.setdefault("run_id", run_dir.name)
    return config, read_history(run_dir / HISTORY_FILE)


def render_run(run_dir: str | Path, reproduce: str | None = None,
               interrupted: bool | None = None) -> dict[str, Any]:
    """Write result.json, timeline.png, report.md and report.html into ``run_dir``;
    return the result. ``interrupted=None`` detects it from the history."""
    run_dir = Path(run_dir)
    config, history = load_run(run_dir)
    result = analyze(history, config, reproduce, interrupted)
    result["files"] = {"history": HISTORY_FILE, "timeline": TIMELINE_FILE, "report": REPORT_FILE,
                       "page": REPORT_HTML}
    (run_dir / RESULT_FILE).write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    title = f"{result.get('experiment') or result['run_id']}: {result['verdict'].upper()}"
    if result["interrupted"]:
        title += " (INTERRUPTED)"
    render_timeline(history, run_dir / TIMELINE_FILE, float(config.get("bucket_s", 1.0)), title)
    page = run_page(result)
    (run_dir / REPORT_FILE).write_text(markdown(page))
    (run_dir / REPORT_HTML).write_text(html(page))
    return result


def runs_page(results_dir: Path) -> Page:
    """Every run under ``results_dir``, newest last."""
    t = Table(["run", "experiment", "topology", "backend", "verdict", "availability during the fault",
               "p99 during the fault", "report", "plot"])
    for rj in sorted(results_dir.glob(f"*/{RESULT_FILE}")):
        run = rj.parent.name
        try:
            r = json.loads(rj.read_text())
            sp = r["metrics"].get("spread") or {}
            verdict = r["verdict"] + (" (interrupted)" if r.get("interrupted") else "")
            t.add(run, r.get("experiment") or "", r.get("topology") or "", r.get("backend") or "",
                  Cell(verdict, tone=r["verdict"]), fmt.spread(sp.get("availability_during"), fmt.pct),
                  fmt.spread(sp.get("p99_during_ms"), fmt.ms), Cell("report", href=f"{run}/{REPORT_HTML}"),
                  Cell("plot", href=f"{run}/{TIMELINE_FILE}"))
        except (ValueError, KeyError, TypeError) as e:
            t.add(run, "", "", "", Cell(f"unreadable ({type(e).__name__})", tone="unknown"), "", "", "", "")
    return Page("Every run").add(Para.of(f"{len(t.rows)} runs. Verdict words: held (every claim held), violated "
                                         "(a claim was violated: that is the evidence), unknown (undecided: see the "
                                         "run's report)."), t)


def write_index(results_dir: str | Path) -> tuple[Path, Path]:
    """Write ``runs.md`` and ``runs.html`` listing every ``<results_dir>/<run>/result.json``;
    returns their paths."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    page = runs_page(results_dir)
    md_path, html_path = results_dir / f"{RUNS_FILE}.md", results_dir / f"{RUNS_FILE}.html"
    md_path.write_text(markdown(page))
    html_path.write_text(html(page))
    return md_path, html_path


def one_line(result: dict[str, Any]) -> str:
    """The run's outcome on one line (CLI)."""
    return verdict_words(result)


SUMMARY_FIGURES = ("availability_during", "p99_during_ms", "failover_s", "recover_s")


def run_summary(result: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """What a script needs from one run (``redislab run --json``): the verdict, each claim's
    verdict and evidence, the headline figures with their spread over cycles, the files."""
    spread = result.get("metrics", {}).get("spread") or {}
    return {
        "experiment": result.get("experiment"), "topology": result.get("topology"),
        "backend": result.get("backend"), "run_dir": str(run_dir), "verdict": result.get("verdict"),
        "interrupted": result.get("interrupted", False), "run_problems": result.get("run_problems", []),
        "claims": [{"name": c["name"], "verdict": c["verdict"], "explanation": c.get("explanation", "")}
                   for c in result.get("claims", [])],
        "figures": {k: spread[k] for k in SUMMARY_FIGURES if k in spread},
        "files": {k: str(run_dir / v) for k, v in result.get("files", {}).items()},
    }
