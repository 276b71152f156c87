"""Check result type, verdict algebra, parameter handling, crash wrapper.

A check is a pure function::

    check(history: History, final_state: dict, params: dict) -> CheckResult

``final_state`` holds what was read from the system after the run (also kept
in the history as ``final_state`` events). Verdicts are three-valued; a check
that raises is reported ``unknown`` with the error text, never ``pass``.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Mapping

from ..history import History

Verdict = Literal["pass", "fail", "unknown"]
PASS: Verdict = "pass"
FAIL: Verdict = "fail"
UNKNOWN: Verdict = "unknown"
_RANK = {PASS: 0, UNKNOWN: 1, FAIL: 2}


@dataclass
class CheckResult:
    """Outcome of one check: name, verdict, metrics (JSON-able) and a
    plain-language explanation."""

    name: str
    verdict: Verdict
    metrics: dict[str, Any] = field(default_factory=dict)
    explanation: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in _RANK:
            raise ValueError(f"bad verdict {self.verdict!r}; expected pass|fail|unknown")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict,
                "metrics": self.metrics, "explanation": self.explanation}


CheckFn = Callable[[History, Mapping[str, Any], Mapping[str, Any]], CheckResult]


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """Combined verdict: fail > unknown > pass. No verdicts -> unknown."""
    vs = list(verdicts)
    if not vs:
        return UNKNOWN
    return max(vs, key=_RANK.__getitem__)


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
    """Run ``fn``; an exception (or a non-CheckResult) becomes ``unknown``."""
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


def verdict_of(failed: bool) -> Verdict:
    return FAIL if failed else PASS


def fmt_s(x: float | None) -> str:
    """Seconds for humans."""
    if x is None:
        return "n/a"
    return f"{x * 1000:.0f} ms" if abs(x) < 1 else f"{x:.1f} s"


def fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.2f}%"


def value_field(value: Any, key: str, default: Any = None) -> Any:
    """``value[key]`` if value is a dict, else ``value`` itself if it is not
    None, else ``default`` (lets ops return either a dict or a bare value)."""
    if isinstance(value, dict):
        return value.get(key, default)
    return default if value is None else value


def arg(args: Any, key: str, default: Any = None) -> Any:
    """``args[key]`` for dict args, else ``default``."""
    return args.get(key, default) if isinstance(args, dict) else default
