"""The run's timeline plot: what users saw over time, with the faults shaded.

Lanes: ok throughput, error rate, p50/p99 latency of successful operations (per
bucket, by completion time), all over the workload's own operations (the
warm-up is drawn but greyed); fault windows shaded and labelled; phase
boundaries dotted; a state lane for breaker transitions and node roles; the
topology's own failover events (Sentinel ``+switch-master``) as marks.
"""
from __future__ import annotations

import math
from pathlib import Path

from .history import BREAKER, ROLE, TOPOLOGY, WARMUP, WORKLOAD, History
from .stats import time_buckets

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
    ops = [o for o in history.ops if o.kind == WORKLOAD]
    start = min((o.intended for o in ops), default=0.0)
    bs = time_buckets(ops, bucket_s, start=start) if ops else []
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
    ax_lat.set_ylabel("ok latency ms")
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
            ax.axvspan(w.start, end, color="#ff9896", alpha=0.3, lw=0)
        ax_thr.annotate(w.label + ("" if w.end is not None else " (not healed)"),
                        xy=(w.start, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(2, -2), textcoords="offset points", va="top", fontsize=8,
                        color="#8c1c13")
    warm_end = history.warmup_end()
    if warm_end is not None:
        for ax in axes:
            ax.axvspan(start, warm_end, color="#bbbbbb", alpha=0.35, lw=0)
        ax_err.annotate("warm-up (excluded)", xy=(start, 0.5), xycoords=("data", "axes fraction"),
                        xytext=(2, 0), textcoords="offset points", fontsize=7, color="#555555")
    for e in history.events_of(TOPOLOGY):
        if e.fields.get("event") == "+switch-master":
            for ax in axes:
                ax.axvline(e.t, color="#1f77b4", ls="--", lw=0.9)
            ax_thr.annotate("switch-master", xy=(e.t, 0.02), xycoords=("data", "axes fraction"),
                            xytext=(2, 2), textcoords="offset points", fontsize=7, color="#1f77b4")
    for ph in history.phase_windows():
        if ph.name == WARMUP:
            continue
        for ax in axes:
            ax.axvline(ph.start, color="#555555", ls=":", lw=0.8)
        ax_err.annotate(ph.name + (f" {ph.cycle}" if ph.cycle else ""), xy=(ph.start, 0.0),
                        xycoords=("data", "axes fraction"),
                        xytext=(2, 2), textcoords="offset points", fontsize=7, color="#555555")
    if series:
        ax_st = axes[3]
        seen: dict[str, str] = {}
        for row, (_name, pts) in enumerate(series.items()):
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


