"""Check result type, verdict algebra, parameter handling, crash wrapper.

A check is a pure function::

    check(history: History, final_state: dict, params: dict) -> CheckResult

``final_state`` holds what was read from the system after the run (also kept
in the history as ``final_state`` events).

Two kinds of result, kept apart:

* a **claim** ("no acknowledged write is lost", "at most one holder at a
  time") is judged ``held`` / ``violated`` / ``unknown``, with its evidence;
  a claim that crashes is ``unknown``, never ``held``;
* a **measurement** (errors by type, time to detect, failover time ...) has
  no verdict (``None``): it is a figure, not a judgement, and never moves
  the run's verdict.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..fmt import pct, secs
from ..history import History

Verdict = Literal["held", "violated", "unknown"]
HELD: Verdict = "held"
VIOLATED: Verdict = "violated"
UNKNOWN: Verdict = "unknown"
_RANK = {HELD: 0, UNKNOWN: 1, VIOLATED: 2}
CLAIM, MEASUREMENT = "claim", "measurement"


@dataclass
class CheckResult:
    """Outcome of one check: name, verdict (``None`` for a measurement), metrics
    (JSON-able), a plain-language explanation and, for a claim, the claim in words."""

    name: str
    verdict: Verdict | None
    metrics: dict[str, Any] = field(default_factory=dict)
    explanation: str = ""
    claim: str = ""

    def __post_init__(self) -> None:
        if self.verdict is not None and self.verdict not in _RANK:
            raise ValueError(f"bad verdict {self.verdict!r}; expected held|violated|unknown or None")

    @property
    def kind(self) -> str:
        return MEASUREMENT if self.verdict is None else CLAIM

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "verdict": self.verdict, "claim": self.claim,
                "metrics": self.metrics, "explanation": self.explanation}


CheckFn = Callable[[History, Mapping[str, Any], Mapping[str, Any]], CheckResult]


def worst(verdicts: Iterable[Verdict | None]) -> Verdict:
    """Combined verdict of claims: violated > unknown > held; measurements (None)
    are ignored. No claim at all -> unknown (nothing was judged)."""
    vs = [v for v in verdicts if v is not None]
    if not vs:
        return UNKNOWN
    return max(vs, key=_RANK.__getitem__)


def judged(name: str, violated: bool, metrics: dict[str, Any], explanation: str, claim: str) -> CheckResult:
    """A claim's result: ``violated`` or ``held``."""
    return CheckResult(name, VIOLATED if violated else HELD, metrics, explanation, claim)


def measured(name: str, metrics: dict[str, Any], explanation: str) -> CheckResult:
    """A measurement's result (no verdict)."""
    return CheckResult(name, None, metrics, explanation)


class CheckParamError(ValueError):
    """A check got a parameter it does not know, or lacks a required one."""


REQUIRED = object()  # marker for a parameter without default


def get_params(check: str, params: Mapping[str, Any] | None,
               defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``params`` over ``defaults``; unknown or missing required
    parameters raise :class:`CheckParamError` naming the known ones."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise CheckParamError(f"check {check!r}: unknown parameter(s) {unknown}; "
                              f"known: {sorted(defaults)}")
    out = {**defaults, **params}
    missing = sorted(k for k, v in out.items() if v is REQUIRED)
    if missing:
        raise CheckParamError(f"check {check!r}: missing required parameter(s) {missing}")
    return out


def run_check(name: str, fn: CheckFn, history: History,
              final_state: Mapping[str, Any] | None = None,
              params: Mapping[str, Any] | None = None) -> CheckResult:
    """Run ``fn``; an exception (or a non-CheckResult) becomes ``unknown`` (a claim
    that cannot be judged is never ``held``)."""
    try:
        res = fn(history, final_state or {}, params or {})
        if not isinstance(res, CheckResult):
            raise TypeError(f"check returned {type(res).__name__}, not CheckResult")
        if res.name != name:
            res.name = name
        return res
    except Exception as e:  # noqa: BLE001 - a crashing check reports unknown
        tb = traceback.extract_tb(e.__traceback__)
        where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
        return CheckResult(name, UNKNOWN, {"error": f"{type(e).__name__}: {e}"},
                           f"The check crashed ({type(e).__name__}: {e}{where}), "
                           "so nothing is known about this property.")


fmt_s = secs  # seconds for humans (re-exported for the checks)
fmt_pct = pct


def value_field(value: Any, key: str, default: Any = None) -> Any:
    """``value[key]`` if value is a dict, else ``value`` itself if it is not
    None, else ``default`` (lets ops return either a dict or a bare value)."""
    if isinstance(value, dict):
        return value.get(key, default)
    return default if value is None else value


def arg(args: Any, key: str, default: Any = None) -> Any:
    """``args[key]`` for dict args, else ``default``."""
    return args.get(key, default) if isinstance(args, dict) else default
