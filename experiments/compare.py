"""Two runs of the same experiment, figure by figure: does run B lie within run A's spread?

Typical use: A on the lab's own topology, B on a target (``redislab compare A B``), or two
repeats of one setup. Each run gives, per headline figure, one value per fault cycle (the
answer page's figures, ``answer.EXTRACT``, plus the time to detect and whether a node was
promoted). Per figure:

* A's spread is the range (lowest..highest) of its per-cycle values, widened on each side by
  the figure's ``margin`` (``FIGURES``; in the figure's own unit): the figure's resolution, or
  the timing noise one operation has on this machine class, never a fudge for A's cycle to
  cycle spread (the range is that). The failover time's resolution depends on the fault: a
  kill is seen at once, a silent fault (partition, latency) at Sentinel's next PING, so the
  margin of a silent fault's run adds the PING period (``Figure.margin_for``);
* **within**: the median of B's per-cycle values lies in that widened range;
* **outside**: it does not;
* **unknown**: either run has fewer than two values for it (a run of one cycle, a figure the
  run did not produce, such as a failover time when no node was promoted): one value is no
  spread, and a missing figure is no evidence either way.

The claims are compared by verdict: they agree when every claim either run judged has the same
verdict in both (a claim one run did not judge disagrees), and so do the runs' verdicts.
Differences in how the runs were configured (profile, cycles, phases, rate, seed, checks,
client policy) do not change an outcome; they are listed as notes.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from labcommon.errors import LabError

from . import fmt
from .answer import EXTRACT, FORMATS, LABELS

Outcome = Literal["within", "outside", "unknown"]
WITHIN: Outcome = "within"
OUTSIDE: Outcome = "outside"
UNKNOWN: Outcome = "unknown"
MIN_VALUES = 2  # per-cycle values a run needs before its figure has a spread


def _check_list(result: Mapping[str, Any], check: str, key: str) -> list[Mapping[str, Any]]:
    c = next((c for c in result.get("checks", []) if c["name"] == check), None)
    return list((c or {}).get("metrics", {}).get(key) or [])


def _detect(result: Mapping[str, Any]) -> list[Any]:
    """Per cycle: seconds from the inject to the first operation that failed (time_to_detect)."""
    return [f.get("detect_s") for f in _check_list(result, "time_to_detect", "faults")]


def _promoted(result: Mapping[str, Any]) -> list[Any]:
    """Per cycle: 1 when a node was promoted during the cycle, else 0 (failover_time)."""
    return [1.0 if f.get("promoted") else 0.0 for f in _check_list(result, "failover_time", "failovers")]


def _yes_no_share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


@dataclass(frozen=True)
class Figure:
    """A headline figure: its values per fault cycle and how much A's range is widened (``margin``, in
    ``unit``), with the reason for that margin."""

    key: str
    label: str
    unit: str
    margin: float
    why: str
    values: Callable[[Mapping[str, Any]], list[Any]] = field(repr=False)
    show: Callable[[float | None], str] = field(repr=False)
    silent_margin: float | None = None  # the margin when the fault leaves connections open (None: ``margin``)
    silent_why: str = ""

    def margin_for(self, silent: bool) -> tuple[float, str]:
        """The margin and its reason for a run whose fault is ``silent`` (see ``SILENT_KINDS``)."""
        if silent and self.silent_margin is not None:
            return self.silent_margin, self.silent_why
        return self.margin, self.why


def _fig(key: str, unit: str, margin: float, why: str, silent_margin: float | None = None,
         silent_why: str = "") -> Figure:
    return Figure(key, LABELS[key], unit, margin, why, EXTRACT[key], FORMATS[key], silent_margin, silent_why)


_SHARE_WHY = "about one client timeout (0.25 s) of a 5-s fault window"
_OP_WHY = "one client timeout (0.25 s): the longest an operation that fails takes"
_MS_WHY = "scheduling noise of one operation on a loaded 2-core machine"
# A p99 over a fault window of ~800 operations is its 8th-worst: one stall of the generator's process that
# holds back that many operations moves it by the stall's length. At a fault's start the operations in flight
# time out together and fall back at once, so such a stall lands on the tail. Measured on this machine class:
# cache-aside-latency's p99 253-254 ms in one run and 268 / 291 ms in another, the second with the generator
# 20-32 ms late at the fault's start (send lag); a gen-2 collection took up to 33 ms.
_P99_WHY = "one stall of the generator's process (measured up to 32 ms at a fault's start) on a loaded 2-core machine"
# Sentinel PINGs each instance once per period (sentinel.c SENTINEL_PING_PERIOD, 1 s, or
# down-after-milliseconds when shorter) and counts down-after from the oldest unanswered PING. A killed
# node is seen at once (its connection closes); a silent fault (partition, latency) only at the next PING,
# 0 to 1 s after the inject, wherever the inject fell in that period: a cycle's failover time varies by up
# to a second from that alone (measured: kill rows' two cycles within 0.15 s, partition rows' 0.3-0.7 s).
SENTINEL_PING_PERIOD_S = 1.0
SILENT_KINDS = ("latency", "partition")  # fault kinds (target_fit.fault_kind) that leave connections open
_FAILOVER_WHY = "a Sentinel timer tick (0.1 s) and the observer's role poll (0.1 s)"
FIGURES: dict[str, Figure] = {f.key: f for f in (
    _fig("availability_during", "share 0..1", 0.05, _SHARE_WHY),
    _fig("p99_during_ms", "ms", 50.0, _P99_WHY),
    _fig("error_p50_during_ms", "ms", 25.0, _MS_WHY),
    _fig("availability_after", "share 0..1", 0.05, _SHARE_WHY),
    _fig("failover_s", "s", 0.25, _FAILOVER_WHY, silent_margin=0.25 + SENTINEL_PING_PERIOD_S,
         silent_why=f"{_FAILOVER_WHY}, plus where a silent fault fell in Sentinel's PING period "
                    f"({SENTINEL_PING_PERIOD_S:g} s)"),
    _fig("first_success_s", "s", 0.25, _OP_WHY),
    _fig("recover_s", "s", 1.0, "the recovery check's throughput bucket (1 s): the figure's resolution"),
    _fig("lost_ratio_in_windows", "share 0..1", 0.05, "sampling: a few writes of a fault window's hundreds"),
    Figure("time_to_detect_s", "time to detect the fault", "s", 0.25, _OP_WHY, _detect, fmt.secs),
    Figure("promoted", "a node promoted in the cycle (1 yes, 0 no)", "0/1", 0.0,
           "a yes/no per cycle: no margin", _promoted, _yes_no_share),
)}


def cycle_values(result: Mapping[str, Any], key: str) -> list[float]:
    """The per-cycle values of figure ``key`` in a run's result (cycles without one left out)."""
    return [float(v) for v in FIGURES[key].values(result) if v is not None and v == v]  # v == v: not NaN


@dataclass(frozen=True)
class FigureComparison:
    """One figure of B against A's widened range (``low``..``high``, None when A has no spread)."""

    key: str
    label: str
    unit: str
    margin: float
    margin_why: str
    a: list[float]
    b: list[float]
    low: float | None
    high: float | None
    b_median: float | None
    outcome: Outcome
    why: str


def compare_figure(fig: Figure, a: Sequence[float], b: Sequence[float], silent: bool = False) -> FigureComparison:
    """``b``'s per-cycle values against ``a``'s (see the module doc); ``silent``: the runs' fault leaves
    connections open (``Figure.margin_for``)."""
    margin, margin_why = fig.margin_for(silent)
    b_median = statistics.median(b) if b else None
    low = min(a) - margin if len(a) >= MIN_VALUES else None
    high = max(a) + margin if len(a) >= MIN_VALUES else None
    short = [name for name, xs in (("A", a), ("B", b)) if len(xs) < MIN_VALUES]
    if short:
        outcome: Outcome = UNKNOWN
        why = " and ".join(f"run {n} has {len(a if n == 'A' else b)} value(s)" for n in short) + \
            f", fewer than {MIN_VALUES}"
    else:
        assert low is not None and high is not None and b_median is not None
        outcome = WITHIN if low <= b_median <= high else OUTSIDE
        why = (f"B's median {fig.show(b_median)} is {'inside' if outcome == WITHIN else 'outside'} "
               f"A's range {fig.show(min(a))} to {fig.show(max(a))} widened by {margin:g} {fig.unit}")
    return FigureComparison(fig.key, fig.label, fig.unit, margin, margin_why, list(a), list(b), low, high,
                            b_median, outcome, why)


@dataclass(frozen=True)
class ClaimComparison:
    """One claim's verdict in each run (None: the run did not judge it)."""

    name: str
    a: str | None
    b: str | None

    @property
    def agree(self) -> bool:
        return self.a == self.b


@dataclass
class Comparison:
    """Run B against run A: every figure, every claim, and what was configured differently."""

    experiment: str | None
    a: str  # labels: run ids or directories
    b: str
    figures: list[FigureComparison]
    claims: list[ClaimComparison]
    verdicts: tuple[str | None, str | None]
    notes: list[str] = field(default_factory=list)

    @property
    def outside(self) -> list[str]:
        return [f.key for f in self.figures if f.outcome == OUTSIDE]

    @property
    def verdicts_agree(self) -> bool:
        return self.verdicts[0] == self.verdicts[1] and all(c.agree for c in self.claims)

    @property
    def matches(self) -> bool:
        """No figure outside A's spread and the verdicts agree (figures that are unknown are not held
        against it; they are listed)."""
        return not self.outside and self.verdicts_agree

    def to_json(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "a": self.a, "b": self.b, "matches": self.matches,
                "verdicts_agree": self.verdicts_agree, "verdicts": {"a": self.verdicts[0], "b": self.verdicts[1]},
                "outside": self.outside, "figures": [asdict(f) for f in self.figures],
                "claims": [{**asdict(c), "agree": c.agree} for c in self.claims], "notes": self.notes}


def fault_is_silent(experiment: str) -> bool:
    """Whether ``experiment``'s fault leaves connections open (``SILENT_KINDS``); an experiment this
    version does not know, or whose fault is not classified, counts as silent (the wider margin)."""
    from . import registry
    from .target_fit import fault_kind
    try:
        kind = fault_kind(registry.get(experiment))
    except LabError:
        return True
    return kind is None or kind in SILENT_KINDS


CONFIG_KEYS = ("profile", "seed", "cycles", "workload", "checks", "hypothesis", "options", "client_policy",
               "pattern_retry")


def config_notes(config_a: Mapping[str, Any], config_b: Mapping[str, Any]) -> list[str]:
    """How the runs were configured differently (each a note; none changes an outcome)."""
    def show(x: Any) -> str:
        return json.dumps(x, sort_keys=True)
    return [f"{k} differs: {show(config_a.get(k))} vs {show(config_b.get(k))}"
            for k in CONFIG_KEYS if config_a.get(k) != config_b.get(k)]


def compare_results(a: Mapping[str, Any], b: Mapping[str, Any], label_a: str = "A", label_b: str = "B",
                    notes: Sequence[str] = ()) -> Comparison:
    """Run B's result against run A's (``result.json`` documents); LabError when they are runs of
    different experiments."""
    if a.get("experiment") != b.get("experiment"):
        raise LabError(f"run A is {a.get('experiment')!r} and run B is {b.get('experiment')!r}",
                       "compare two runs of the same experiment")
    silent = fault_is_silent(str(a.get("experiment")))
    figures = [compare_figure(fig, cycle_values(a, key), cycle_values(b, key), silent) for key, fig in FIGURES.items()]
    va = {c["name"]: c.get("verdict") for c in a.get("claims", [])}
    vb = {c["name"]: c.get("verdict") for c in b.get("claims", [])}
    claims = [ClaimComparison(n, va.get(n), vb.get(n)) for n in [*va, *(n for n in vb if n not in va)]]
    return Comparison(a.get("experiment"), label_a, label_b, figures, claims, (a.get("verdict"), b.get("verdict")),
                      list(notes))


def load_run_result(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``result.json`` and ``config.json`` (empty if absent) of a run directory; LabError otherwise."""
    path = Path(run_dir)
    result_file, config_file = path / "result.json", path / "config.json"
    if not result_file.is_file():
        hint = (f"re-render it: redislab report {path}" if (path / "history.jsonl").is_file()
                else "give a run directory (it holds result.json), e.g. results/<run id>")
        raise LabError(f"{path} holds no result.json", hint)
    try:
        result = json.loads(result_file.read_text())
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    except (OSError, ValueError) as exc:
        raise LabError(f"{path}: cannot read its result ({exc})", f"re-render it: redislab report {path}") from None
    if not isinstance(result, dict) or not isinstance(config, dict):
        raise LabError(f"{path}: result.json or config.json is not a JSON object",
                       f"re-render it: redislab report {path}")
    return result, config


def compare_runs(dir_a: str | Path, dir_b: str | Path) -> Comparison:
    """Run directory B against run directory A (see the module doc)."""
    (ra, ca), (rb, cb) = load_run_result(dir_a), load_run_result(dir_b)
    return compare_results(ra, rb, str(dir_a), str(dir_b), config_notes(ca, cb))


def lines(c: Comparison) -> list[str]:
    """The comparison for people, one line per figure and claim."""
    out = [f"{c.experiment}: B = {c.b}", f"  against A = {c.a}"]
    for f in c.figures:
        fig = FIGURES[f.key]
        a = ", ".join(fig.show(x) for x in f.a) or "none"
        b = ", ".join(fig.show(x) for x in f.b) or "none"
        out.append(f"{f.outcome:8} {f.label}: A [{a}], B [{b}]: {f.why}")
    for cl in c.claims:
        out.append(f"{'agree' if cl.agree else 'DIFFER':8} claim {cl.name}: A {cl.a or 'not judged'}, "
                   f"B {cl.b or 'not judged'}")
    out.append(f"{'agree' if c.verdicts[0] == c.verdicts[1] else 'DIFFER':8} verdict: A {c.verdicts[0]}, "
               f"B {c.verdicts[1]}")
    out += [f"note: {n}" for n in c.notes]
    within = sum(f.outcome == WITHIN for f in c.figures)
    unknown = [f.key for f in c.figures if f.outcome == UNKNOWN]
    out.append(f"{within} figure(s) within A's spread, {len(c.outside)} outside"
               + (f" ({', '.join(c.outside)})" if c.outside else "")
               + f", {len(unknown)} unknown; verdicts {'agree' if c.verdicts_agree else 'differ'}")
    return out
