"""From a history to a run's result: which checks run, the headline figures per
fault cycle with their spread, and the verdict.

Every figure is computed over the workload's own operations after the declared
warm-up (``History.workload``); lock steps and worker records are counted apart
(``other_records``). "During the fault" is one window per cycle, from the
fault's inject event to its heal event (``History.cycles``), everywhere.

``config.json`` keys read (all optional)::

    run_id, experiment, pattern, topology, backend, profile   # labels
    hypothesis: {availability_min, p99_max_ms, grace_s, during: {availability_min, p99_max_ms} | null}
    checks: ["name", {"name": ..., "params": {...}}, ...]
    reproduce: "command line"
    client_policy: {...}   # the scenario's app client (topologies.clients.ClientPolicy.as_config())
    pattern_retry: {path: {...}}  # its pattern objects' retry (patterns.common.RetryPolicy.as_config())

Default checks: steady_state, errors_by_type and send_lag, plus time_to_detect and
time_to_recover when the history holds a fault. The hypothesis feeds
steady_state (and during_fault, when it names a ``during`` SLO) unless their
specs carry their own params.

An interrupted run (no ``run_end`` event, or ``interrupted=True``) is marked as
such and its verdict is at best ``unknown``: a violation seen in part of a run
is still a violation, but a claim held on part of a run proves nothing.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from .checks import CheckResult, UnknownCheckError, get_check, run_check, worst
from .checks.failover import observed_until, observer_covers
from .history import LAB, RUN_END, WARMUP, WORKER, WORKLOAD, History
from .stats import Spread, baseline_throughput, dropped, server_summary, summarize

DEFAULT_HYPOTHESIS: dict[str, Any] = {"availability_min": 0.99, "p99_max_ms": 50.0, "grace_s": 0.0,
                                      "during": None}
GENERIC_DEFAULT = ["steady_state", "errors_by_type", "send_lag"]
FAULT_DEFAULT = ["time_to_detect", "time_to_recover"]


def hypothesis_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The run's steady-state hypothesis, defaults filled in."""
    return {**DEFAULT_HYPOTHESIS, **(config.get("hypothesis") or {})}


def check_specs(config: Mapping[str, Any], history: History) -> list[dict[str, Any]]:
    """Checks to run: from config, or the defaults (see module doc)."""
    hyp = hypothesis_of(config)
    raw = config.get("checks")
    if raw is None:
        raw = [*GENERIC_DEFAULT, *(FAULT_DEFAULT if history.fault_windows() else [])]
    specs = []
    for s in raw:
        spec = {"name": s, "params": {}} if isinstance(s, str) else \
            {"name": s["name"], "params": dict(s.get("params") or {})}
        if spec["name"] == "steady_state" and not spec["params"]:
            spec["params"] = {k: hyp[k] for k in ("availability_min", "p99_max_ms", "grace_s")}
        if spec["name"] == "during_fault" and not spec["params"] and hyp["during"]:
            spec["params"] = dict(hyp["during"])
        specs.append(spec)
    if hyp["during"] and not any(s["name"] == "during_fault" for s in specs):
        specs.insert(1, {"name": "during_fault", "params": dict(hyp["during"])})
    return specs


def _other_records(history: History) -> dict[str, dict[str, dict[str, int]]]:
    """Steps and worker records, counted by kind, op and outcome (not in any headline figure)."""
    out: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for o in history.ops:
        if o.kind != WORKLOAD:
            out[o.kind][o.op][o.outcome] += 1
    return {k: {op: dict(c) for op, c in v.items()} for k, v in out.items()}


def _cycle_figures(history: History) -> list[dict[str, Any]]:
    """Per fault cycle: what users saw during the fault and after the heal."""
    out = []
    for c in history.cycles():
        during, after = history.during(c), history.after(c)
        out.append({"cycle": c.index, "fault": c.fault.label, "inject_t": c.start, "heal_t": c.fault.end,
                    "during": summarize(during).to_json(), "after": summarize(after).to_json()})
    return out


def key_metrics(history: History) -> dict[str, Any]:
    """Headline figures over the workload's ops after the warm-up, per cycle and overall."""
    ops = history.workload
    cycles = history.cycles()
    in_fault = [o for c in cycles for o in history.during(c)]
    after = [o for c in cycles for o in history.after(c)]
    lags = sorted(o.send_lag for o in ops if not dropped(o))
    per_cycle = _cycle_figures(history)
    warm = [o for o in history.ops if o.kind == WORKLOAD and o.phase == WARMUP]
    return {
        "overall": summarize(ops).to_json(),
        "before_fault": summarize(history.before_faults()).to_json(),
        "during_fault": summarize(in_fault).to_json() if cycles else None,
        "after_heal": summarize(after).to_json() if cycles else None,
        "cycles": per_cycle,
        "spread": {
            "availability_during": Spread.of(c["during"]["availability"] for c in per_cycle).to_json(),
            "p99_during_ms": Spread.of(c["during"]["p99_ms"] for c in per_cycle).to_json(),
            "error_p50_during_ms": Spread.of(c["during"]["error_p50_ms"] for c in per_cycle).to_json(),
            "availability_after": Spread.of(c["after"]["availability"] for c in per_cycle).to_json(),
        },
        "baseline_throughput": baseline_throughput(history),
        "send_lag_p99_ms": lags[min(len(lags) - 1, int(0.99 * len(lags)))] * 1000 if lags else None,
        "warmup": {"s": next((p.end - p.start for p in history.phase_windows() if p.name == WARMUP), 0.0),
                   "ops_excluded": len(warm)},
        "other_records": _other_records(history),
        "faults": [{"fault": w.fault, "label": w.label, "start": w.start, "end": w.end}
                   for w in history.fault_windows()],
        "phases": [{"name": p.name, "start": p.start, "end": p.end, "cycle": p.cycle}
                   for p in history.phase_windows()],
        "duration_s": history.t_end,
    }


def lab_failures(history: History) -> list[str]:
    """The lab's own machinery failing during the run (``lab`` events with ``up: false``, an observer
    whose records stop before the run's end)."""
    return [f"the lab's {e.fields.get('component', 'machinery')} stopped answering {e.t:.1f} s into the run: "
            "the figures after that measure the lab, not Redis"
            for e in history.events_of(LAB) if e.fields.get("up") is False] + observer_gap(history)


def observer_gap(history: History) -> list[str]:
    """The run started an observer and its INFO samples (every 0.5 s) stop more than two intervals
    before the workload's end: what the topology reported after that (promotions, roles) is missing."""
    started = any(e.fields.get("name") == "observer" and e.fields.get("action") == "start"
                  for e in history.events_of(WORKER))
    end = next((e.t for e in history.events_of(RUN_END)), None)
    until = observed_until(history)
    if not started or end is None or (until is not None and observer_covers(until, end)):
        return []
    stop = "has no sample" if until is None else f"stop {until:.1f} s into the run"
    return [f"the observer's records {stop}, before the workload's end at {end:.1f} s: what the topology "
            "reported after that (promotions, roles) is missing"]


def _check_figure(by: Mapping[str, CheckResult], check: str, key: str) -> Any:
    r = by.get(check)
    return r.metrics.get(key) if r is not None else None


def analyze(history: History, config: Mapping[str, Any] | None = None,
            reproduce: str | None = None, interrupted: bool | None = None) -> dict[str, Any]:
    """The result document for a run (what ``result.json`` holds)."""
    config = dict(config or {})
    results: list[CheckResult] = []
    final_state = history.final_state()
    for spec in check_specs(config, history):
        try:
            get_check(spec["name"])
        except UnknownCheckError as e:
            results.append(CheckResult(spec["name"], "unknown", {"error": str(e)}, str(e)))
            continue
        results.append(run_check(spec["name"], history, final_state, spec["params"]))
    was_interrupted = (not history.completed) if interrupted is None else interrupted
    claims = [r for r in results if r.verdict is not None]
    machinery = lab_failures(history)
    verdict = worst([r.verdict for r in claims] + (["unknown"] if was_interrupted else []))
    if machinery:
        verdict = "unknown"  # the harness broke: what followed measures the lab, not Redis
    metrics = key_metrics(history)
    by = {r.name: r for r in results}
    metrics["time_to_detect_s"] = _check_figure(by, "time_to_detect", "detect_s")
    metrics["time_to_first_success_s"] = _check_figure(by, "time_to_recover", "first_success_s")
    metrics["time_to_recover_s"] = _check_figure(by, "time_to_recover", "recover_s")
    metrics["spread"].update({
        "time_to_detect_s": _check_figure(by, "time_to_detect", "spread"),
        "failover_s": _check_figure(by, "failover_time", "spread"),
        "client_share_s": _check_figure(by, "failover_time", "client_spread"),  # promotion -> served again
        "first_success_s": _check_figure(by, "time_to_recover", "first_success_spread"),
        "recover_s": _check_figure(by, "time_to_recover", "recover_spread"),
        "lost_ratio_in_windows": _check_figure(by, "lost_writes", "lost_ratio_spread"),
    })
    reasons = list(machinery)
    if was_interrupted:
        reasons.append("the run was interrupted")
    if final_state.get("final_read_error"):
        reasons.append(f"the final read failed ({final_state['final_read_error']})")
    return _clean({
        "run_id": config.get("run_id"),
        "experiment": config.get("experiment"), "pattern": config.get("pattern"),
        "topology": config.get("topology"), "backend": config.get("backend"),
        "profile": config.get("profile"), "cycles_planned": config.get("cycles"),
        "verdict": verdict, "interrupted": was_interrupted,
        "violated": [{"name": r.name, "claim": r.claim, "explanation": r.explanation}
                     for r in claims if r.verdict == "violated"],
        "undecided": [{"name": r.name, "claim": r.claim, "explanation": r.explanation}
                      for r in claims if r.verdict == "unknown"],
        "run_problems": reasons,
        "reproduce": reproduce if reproduce is not None else config.get("reproduce"),
        "hypothesis": hypothesis_of(config),
        "client_policy": config.get("client_policy"),
        "pattern_retry": config.get("pattern_retry"),
        "generator_priority": config.get("generator_priority"),
        "generator_gc": config.get("generator_gc"),
        "metrics": metrics,
        "server": server_summary(history),
        "claims": [r.to_json() for r in claims],
        "measurements": [r.to_json() for r in results if r.verdict is None],
        "checks": [r.to_json() for r in results],
        "history": {"ops": len(history.ops), "workload_ops": len(history.workload), "events": len(history.events),
                    "truncated_lines": history.truncated_lines, "format": history.meta.get("version")},
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
