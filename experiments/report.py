"""Run report: ``result.json``, ``timeline.png`` and ``report.md`` from a run
directory, plus ``results/index.md`` / ``index.html`` over all runs.

Everything is derived from ``history.jsonl``; ``config.json`` only says what
was run and what to check. Re-rendering a run directory reproduces its report.

``config.json`` keys read (all optional)::

    run_id, experiment, pattern, topology, backend   # labels
    hypothesis: {availability_min: 0.99, p99_max_ms: 50, grace_s: 0}
    checks: ["name", {"name": ..., "params": {...}}, ...]
    reproduce: "command line"                         # if not given by the caller
    bucket_s: 1.0                                     # timeline bucket width, s

Default checks: steady_state, errors_by_type and send_lag, plus time_to_detect and
time_to_recover when the history holds a fault. The hypothesis feeds
steady_state unless its spec carries its own params.

An interrupted run (no ``run_end`` event, or ``interrupted=True``) is marked
as such and its verdict is at best ``unknown``: a violation seen in part of a
run is still a violation, but a pass on part of a run proves nothing.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Mapping

from .checks import CheckResult, UnknownCheckError, get_check, run_check, worst
from .history import BREAKER, ROLE, History, Op, read_history
from .stats import baseline_throughput, server_summary, summarize, time_buckets

RESULT_FILE = "result.json"
TIMELINE_FILE = "timeline.png"
REPORT_FILE = "report.md"
HISTORY_FILE = "history.jsonl"
CONFIG_FILE = "config.json"

DEFAULT_HYPOTHESIS = {"availability_min": 0.99, "p99_max_ms": 50.0, "grace_s": 0.0}


# ---------------------------------------------------------------- analysis

def check_specs(config: Mapping[str, Any], history: History) -> list[dict[str, Any]]:
    """Checks to run: from config, or the defaults (see module doc)."""
    hyp = {**DEFAULT_HYPOTHESIS, **(config.get("hypothesis") or {})}
    raw = config.get("checks")
    if raw is None:
        raw = ["steady_state", "errors_by_type", "send_lag"]
        if history.fault_windows():
            raw += ["time_to_detect", "time_to_recover"]
    specs = []
    for s in raw:
        spec = {"name": s, "params": {}} if isinstance(s, str) else \
            {"name": s["name"], "params": dict(s.get("params") or {})}
        if spec["name"] == "steady_state" and not spec["params"]:
            spec["params"] = hyp
        specs.append(spec)
    return specs


def _in_any(o: Op, windows: list[tuple[float, float]]) -> bool:
    return any(a <= o.intended < b for a, b in windows)


def key_metrics(history: History) -> dict[str, Any]:
    """Headline figures: overall, outside/during fault, baseline, per phase."""
    faults = history.fault_windows()
    spans = [(w.start, w.end if w.end is not None else math.inf) for w in faults]
    during = [o for o in history.ops if _in_any(o, spans)]
    outside = [o for o in history.ops if not _in_any(o, spans)]
    baseline = [o for o in history.ops if o.phase == "baseline"] or \
        [o for o in history.ops if not spans or o.intended < spans[0][0]]
    per_phase: dict[str, list[Op]] = {}
    for o in history.ops:
        per_phase.setdefault(o.phase or "-", []).append(o)
    lags = sorted(o.send_lag for o in history.ops if o.error != "overload")
    return {
        "overall": summarize(history.ops).to_json(),
        "outside_fault": summarize(outside).to_json(),
        "during_fault": summarize(during).to_json() if faults else None,
        "baseline": summarize(baseline).to_json(),
        "per_phase": {k: summarize(v).to_json() for k, v in per_phase.items()},
        "baseline_throughput": baseline_throughput(history),
        "send_lag_p99_ms": lags[min(len(lags) - 1, int(0.99 * len(lags)))] * 1000 if lags else None,
        "faults": [{"fault": w.fault, "label": w.label, "start": w.start, "end": w.end}
                   for w in faults],
        "phases": [{"name": p.name, "start": p.start, "end": p.end}
                   for p in history.phase_windows()],
        "duration_s": history.t_end,
    }


def analyze(history: History, config: Mapping[str, Any] | None = None,
            reproduce: str | None = None, interrupted: bool | None = None
            ) -> dict[str, Any]:
    """The result document for a run (what ``result.json`` holds)."""
    config = dict(config or {})
    results: list[CheckResult] = []
    for spec in check_specs(config, history):
        try:
            get_check(spec["name"])
        except UnknownCheckError as e:
            results.append(CheckResult(spec["name"], "unknown", {"error": str(e)}, str(e)))
            continue
        results.append(run_check(spec["name"], history, history.final_state(), spec["params"]))
    was_interrupted = (not history.completed) if interrupted is None else interrupted
    verdict = worst([r.verdict for r in results] + (["unknown"] if was_interrupted else []))
    metrics = key_metrics(history)
    by = {r.name: r for r in results}
    det = by.get("time_to_detect")
    rec = by.get("time_to_recover")
    metrics["time_to_detect_s"] = det.metrics.get("detect_s") if det else None
    metrics["time_to_first_success_s"] = rec.metrics.get("first_success_s") if rec else None
    metrics["time_to_recover_s"] = rec.metrics.get("recover_s") if rec else None
    return _clean({
        "run_id": config.get("run_id"),
        "experiment": config.get("experiment"), "pattern": config.get("pattern"),
        "topology": config.get("topology"), "backend": config.get("backend"),
        "verdict": verdict, "interrupted": was_interrupted,
        "reproduce": reproduce if reproduce is not None else config.get("reproduce"),
        "hypothesis": {**DEFAULT_HYPOTHESIS, **(config.get("hypothesis") or {})},
        "metrics": metrics,
        "server": server_summary(history),
        "checks": [r.to_json() for r in results],
        "history": {"ops": len(history.ops), "events": len(history.events),
                    "truncated_lines": history.truncated_lines},
        "files": {"history": HISTORY_FILE, "timeline": TIMELINE_FILE, "report": REPORT_FILE},
    })


def _clean(x: Any) -> Any:
    """JSON-safe copy: non-finite floats -> None, dict keys -> str."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [_clean(v) for v in x]
    return x


# ---------------------------------------------------------------- plot

STATE_COLORS = {"closed": "#2ca02c", "open": "#d62728", "half-open": "#ff7f0e",
                "half_open": "#ff7f0e", "master": "#1f77b4", "primary": "#1f77b4",
                "replica": "#9edae5", "slave": "#9edae5", "down": "#7f7f7f"}


def _state_series(history: History) -> dict[str, list[tuple[float, str]]]:
    series: dict[str, list[tuple[float, str]]] = {}
    for e in history.events_of(BREAKER, ROLE):
        if e.kind == BREAKER:
            name = f"breaker {e.fields.get('name', '')}".strip()
            state = str(e.fields.get("state"))
        else:
            name = f"{e.fields.get('node', '?')} role"
            state = str(e.fields.get("role"))
        series.setdefault(name, []).append((e.t, state))
    return series


def render_timeline(history: History, path: str | Path, bucket_s: float = 1.0,
                    title: str = "") -> Path:
    """Write the timeline PNG: throughput, error rate and p50/p99 latency per
    bucket, fault windows shaded and labelled, phase boundaries dotted, and a
    state lane when breaker/role events exist."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    series = _state_series(history)
    lanes = 3 + (1 if series else 0)
    fig, axes = plt.subplots(lanes, 1, sharex=True, figsize=(11, 2.2 * lanes + 0.6),
                             gridspec_kw={"height_ratios": [3, 2, 3] + ([1.2] if series else [])})
    start = min((o.intended for o in history.ops), default=0.0)
    bs = time_buckets(history.ops, bucket_s, start=start) if history.ops else []
    xs = [b.start for b in bs]
    ax_thr, ax_err, ax_lat = axes[0], axes[1], axes[2]
    step = {"where": "post", "lw": 1.2}
    ax_thr.step(xs, [b.throughput for b in bs], color="#1f77b4", **step)
    ax_thr.set_ylabel("ok ops/s")
    ax_err.step(xs, [100 * b.error_rate if b.error_rate is not None else math.nan for b in bs],
                color="#d62728", **step)
    ax_err.set_ylabel("errors %")
    ax_err.set_ylim(-2, 102)
    p50 = [b.p50_ms if b.p50_ms is not None else math.nan for b in bs]
    p99 = [b.p99_ms if b.p99_ms is not None else math.nan for b in bs]
    ax_lat.step(xs, p50, label="p50", color="#2ca02c", **step)
    ax_lat.step(xs, p99, label="p99", color="#9467bd", **step)
    ax_lat.set_ylabel("latency ms")
    if any(v > 0 for v in p50 + p99 if not math.isnan(v)):
        from matplotlib.ticker import FuncFormatter
        ax_lat.set_yscale("log")
        ax_lat.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax_lat.yaxis.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax_lat.legend(loc="upper left", fontsize=8)
    t_end = max(history.t_end, start + bucket_s)
    for w in history.fault_windows():
        end = w.end if w.end is not None else t_end
        for ax in axes:
            ax.axvspan(w.start, end, color=w.color or "#ff9896", alpha=0.3, lw=0)
        ax_thr.annotate(w.label + ("" if w.end is not None else " (not healed)"),
                        xy=(w.start, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(2, -2), textcoords="offset points", va="top", fontsize=8,
                        color="#8c1c13")
    for ph in history.phase_windows():
        for ax in axes:
            ax.axvline(ph.start, color="#555555", ls=":", lw=0.8)
        ax_err.annotate(ph.name, xy=(ph.start, 0.0), xycoords=("data", "axes fraction"),
                        xytext=(2, 2), textcoords="offset points", fontsize=7, color="#555555")
    if series:
        ax_st = axes[3]
        seen: dict[str, str] = {}
        for row, (name, pts) in enumerate(series.items()):
            for i, (t, state) in enumerate(pts):
                t1 = pts[i + 1][0] if i + 1 < len(pts) else t_end
                color = STATE_COLORS.get(state, "#bcbd22")
                ax_st.broken_barh([(t, max(t1 - t, 1e-6))], (row - 0.4, 0.8), color=color)
                seen.setdefault(state, color)
        ax_st.set_yticks(range(len(series)), list(series), fontsize=7)
        ax_st.set_ylim(-0.6, len(series) - 0.4)
        from matplotlib.patches import Patch
        ax_st.legend(handles=[Patch(color=c, label=s) for s, c in seen.items()],
                     loc="upper left", fontsize=7, ncol=len(seen))
    axes[-1].set_xlabel("seconds since start")
    axes[-1].set_xlim(start, t_end)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- markdown

def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _ms(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.2f} ms" if x < 10 else f"{x:,.0f} ms")


def _s(x: float | None) -> str:
    return "n/a" if x is None else (f"{x * 1000:.0f} ms" if x < 1 else f"{x:.1f} s")


def meaning(result: Mapping[str, Any]) -> str:
    """The plain-language "what this means" paragraph, built from numbers."""
    m = result["metrics"]
    checks = result["checks"]
    base, dur = m["baseline"], m.get("during_fault")
    parts: list[str] = []
    if result.get("interrupted"):
        parts.append("The run was interrupted, so these figures cover only part of the "
                     "planned run and a pass would prove nothing.")
    if m["faults"]:
        labels = ", ".join(f["label"] for f in m["faults"])
        span = sum(((f["end"] if f["end"] is not None else m["duration_s"]) - f["start"])
                   for f in m["faults"])
        parts.append(f"While the fault ({labels}) was active for {_s(span)}, "
                     f"{_pct(dur and dur['availability'])} of requests succeeded, against "
                     f"{_pct(base['availability'])} at baseline; p99 latency was "
                     f"{_ms(dur and dur['p99_ms'])} against {_ms(base['p99_ms'])}.")
        det = m.get("time_to_detect_s")
        parts.append(f"Clients saw the first error {_s(det)} after the fault began."
                     if det is not None else "Clients saw no error at all during the fault.")
        fs, rec = m.get("time_to_first_success_s"), m.get("time_to_recover_s")
        if fs is None:
            parts.append("No request succeeded after the fault was healed.")
        elif rec is None:
            parts.append(f"After healing, the first request succeeded after {_s(fs)}, but "
                         "throughput did not get back to 90% of normal before the run ended.")
        else:
            parts.append(f"After healing, the first request succeeded after {_s(fs)} and "
                         f"throughput was back to 90% of normal after {_s(rec)}.")
    else:
        o = m["overall"]
        parts.append(f"No fault was injected: {_pct(o['availability'])} of {o['ops']} requests "
                     f"succeeded with p99 latency {_ms(o['p99_ms'])}.")
    failed = [c for c in checks if c["verdict"] == "fail"]
    unknown = [c for c in checks if c["verdict"] == "unknown"]
    if failed:
        parts.append("Problems found: " + " ".join(c["explanation"] for c in failed))
    else:
        parts.append("No check found a violation.")
    if unknown:
        parts.append(f"{len(unknown)} check(s) could not decide ("
                     + ", ".join(c["name"] for c in unknown) + ").")
    return " ".join(parts)


def hypothesis_text(result: Mapping[str, Any]) -> str:
    h = result["hypothesis"]
    return (f"Outside the fault window, availability stays at or above "
            f"{_pct(h['availability_min'])} and p99 latency at or below {h['p99_max_ms']:g} ms; "
            "no acknowledged data is lost or corrupted (per the checks below).")


def render_markdown(result: Mapping[str, Any]) -> str:
    """``report.md`` text."""
    m = result["metrics"]
    v = result["verdict"].upper()
    title = result.get("experiment") or result.get("run_id") or "run"
    lines = [f"# {title}: {v}", ""]
    if result.get("interrupted"):
        lines += ["> **INTERRUPTED**: the run did not finish; figures cover part of it "
                  "and the verdict is at best UNKNOWN.", ""]
    labels = [f"{k} `{result[k]}`" for k in ("pattern", "topology", "backend", "run_id")
              if result.get(k)]
    if labels:
        lines += [" · ".join(labels), ""]
    lines += [f"**Hypothesis:** {hypothesis_text(result)}", "",
              f"**Verdict: {v}** (worst of {len(result['checks'])} checks)", ""]
    dur = m.get("during_fault") or {}
    o = m["overall"]
    rows = [("Availability outside fault / during fault",
             f"{_pct(m['outside_fault']['availability'])} / {_pct(dur.get('availability'))}"),
            ("p99 latency baseline / during fault",
             f"{_ms(m['baseline']['p99_ms'])} / {_ms(dur.get('p99_ms'))}"),
            ("Max latency", _ms(o["max_ms"])),
            ("Time to detect", _s(m.get("time_to_detect_s"))),
            ("First success after heal", _s(m.get("time_to_first_success_s"))),
            ("Time to recover (90% throughput)", _s(m.get("time_to_recover_s"))),
            ("Operations ok / fail / unknown", f"{o['ok']} / {o['fail']} / {o['unknown']}"),
            ("Send lag p99", _ms(m.get("send_lag_p99_ms")))]
    lines += ["| Key number | Value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    lines += ["", f"![timeline]({TIMELINE_FILE})", "", "## What this means", "",
              meaning(result), "", "## Checks", "", "| Check | Verdict | Explanation |",
              "|---|---|---|"]
    for c in result["checks"]:
        lines.append(f"| {c['name']} | {c['verdict'].upper()} | "
                     f"{c['explanation'].replace('|', '/')} |")
    lines += ["", "## Per phase", "", "| Phase | Ops | Availability | p50 | p99 | max |",
              "|---|---|---|---|---|---|"]
    for name, s in m["per_phase"].items():
        lines.append(f"| {name} | {s['ops']} | {_pct(s['availability'])} | {_ms(s['p50_ms'])} "
                     f"| {_ms(s['p99_ms'])} | {_ms(s['max_ms'])} |")
    server = result.get("server") or {}
    if server:
        lines += ["", "## What Redis saw", "", "Sampled from each node's INFO every 0.5 s (direct port).", "",
                  "| Node | Roles | Unanswered samples | ops/s mean / peak | Peak memory | Evicted | Hit rate "
                  "| Peak replication lag | Peak clients |", "|---|---|---|---|---|---|---|---|---|"]
        for node, n in sorted(server.items()):
            hit = _pct(n["hit_rate"]) if n.get("hit_rate") is not None else "n/a"
            lines.append(f"| {node} | {' → '.join(n['roles']) or 'n/a'} | {n['down_samples']} of {n['samples']} "
                         f"| {n['ops_per_sec_mean']:.0f} / {n['ops_per_sec_peak']} "
                         f"| {n['used_memory_peak'] / 1048576:.1f} MiB | {n['evicted_keys']} | {hit} "
                         f"| {n['repl_lag_bytes_peak']} B | {n['connected_clients_peak']} |")
    if result.get("reproduce"):
        lines += ["", "## Reproduce", "", "```", result["reproduce"], "```"]
    lines += ["", f"Derived from `{HISTORY_FILE}` ({result['history']['ops']} operations, "
              f"{result['history']['events']} events).", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- files

def load_run(run_dir: str | Path) -> tuple[dict[str, Any], History]:
    """``config.json`` (empty if absent) and the history of a run directory."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_FILE
    config = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    config.setdefault("run_id", run_dir.name)
    return config, read_history(run_dir / HISTORY_FILE)


def render_run(run_dir: str | Path, reproduce: str | None = None,
               interrupted: bool | None = None) -> dict[str, Any]:
    """Write result.json, timeline.png and report.md into ``run_dir``; return
    the result. ``interrupted=None`` detects it from the history."""
    run_dir = Path(run_dir)
    config, history = load_run(run_dir)
    result = analyze(history, config, reproduce, interrupted)
    (run_dir / RESULT_FILE).write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    title = f"{result.get('experiment') or result['run_id']}: {result['verdict'].upper()}"
    if result["interrupted"]:
        title += " (INTERRUPTED)"
    render_timeline(history, run_dir / TIMELINE_FILE, float(config.get("bucket_s", 1.0)), title)
    (run_dir / REPORT_FILE).write_text(render_markdown(result))
    return result


INDEX_COLUMNS = ["Run", "Experiment", "Topology", "Backend", "Verdict", "Availability",
                 "p99", "Time to recover", "Report", "Plot"]


def _index_rows(results_dir: Path) -> list[dict[str, str]]:
    rows = []
    for rj in sorted(results_dir.glob(f"*/{RESULT_FILE}")):
        try:
            r = json.loads(rj.read_text())
            m = r["metrics"]
            verdict = r["verdict"].upper() + (" (interrupted)" if r.get("interrupted") else "")
            rows.append({"run": rj.parent.name, "experiment": r.get("experiment") or "",
                         "topology": r.get("topology") or "", "backend": r.get("backend") or "",
                         "verdict": verdict,
                         "availability": _pct(m["overall"]["availability"]),
                         "p99": _ms(m["overall"]["p99_ms"]),
                         "recover": _s(m.get("time_to_recover_s")),
                         "report": f"{rj.parent.name}/{REPORT_FILE}",
                         "plot": f"{rj.parent.name}/{TIMELINE_FILE}"})
        except (ValueError, KeyError, TypeError) as e:
            rows.append({"run": rj.parent.name, "experiment": "", "topology": "", "backend": "",
                         "verdict": f"UNREADABLE ({type(e).__name__})", "availability": "",
                         "p99": "", "recover": "", "report": "", "plot": ""})
    return rows


def write_index(results_dir: str | Path) -> tuple[Path, Path]:
    """Write ``index.md`` and ``index.html`` summarising every
    ``<results_dir>/<run>/result.json``; returns their paths."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    rows = _index_rows(results_dir)
    md = ["# Results", "", f"{len(rows)} runs.", "",
          "| " + " | ".join(INDEX_COLUMNS) + " |", "|" + "---|" * len(INDEX_COLUMNS)]
    for r in rows:
        rep = f"[report]({r['report']})" if r["report"] else ""
        plot = f"[plot]({r['plot']})" if r["plot"] else ""
        md.append(f"| {r['run']} | {r['experiment']} | {r['topology']} | {r['backend']} | "
                  f"{r['verdict']} | {r['availability']} | {r['p99']} | {r['recover']} | "
                  f"{rep} | {plot} |")
    md_path = results_dir / "index.md"
    md_path.write_text("\n".join(md) + "\n")
    colors = {"PASS": "#d4f4d2", "FAIL": "#f9d0d0", "UNKNOWN": "#fbefc5"}
    e = html.escape
    body = []
    for r in rows:
        bg = colors.get(r["verdict"].split(" ")[0], "#eeeeee")
        link = lambda href, text: f'<a href="{e(href)}">{text}</a>' if href else ""  # noqa: E731
        body.append("<tr>" + "".join(f"<td>{e(r[k])}</td>" for k in
                                     ("run", "experiment", "topology", "backend")) +
                    f'<td style="background:{bg}"><b>{e(r["verdict"])}</b></td>' +
                    "".join(f"<td>{e(r[k])}</td>" for k in ("availability", "p99", "recover")) +
                    f"<td>{link(r['report'], 'report')}</td><td>{link(r['plot'], 'plot')}</td></tr>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>redis-failure-lab results"
            "</title><style>body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>"
            f"<h1>Results</h1><p>{len(rows)} runs.</p><table><tr>"
            + "".join(f"<th>{e(c)}</th>" for c in INDEX_COLUMNS) + "</tr>"
            + "".join(body) + "</table></body></html>\n")
    html_path = results_dir / "index.html"
    html_path.write_text(page)
    return md_path, html_path
