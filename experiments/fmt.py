"""Numbers for humans: the one place figures are formatted for reports and pages."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def pct(x: float | None, digits: int = 2) -> str:
    """A share (0..1) as a percentage."""
    return "n/a" if x is None else f"{x * 100:.{digits}f}%"


def secs(x: float | None) -> str:
    """Seconds: ms below one second."""
    if x is None:
        return "n/a"
    return f"{x * 1000:.0f} ms" if abs(x) < 1 else f"{x:.1f} s"


def ms(x: float | None) -> str:
    """Milliseconds."""
    if x is None:
        return "n/a"
    return f"{x:.2f} ms" if x < 10 else f"{x:,.0f} ms"


def spread(s: Mapping[str, Any] | None, fmt: Callable[[float | None], str]) -> str:
    """``median (low-high, n=k)`` for a ``Spread.to_json()``; the single value when n == 1."""
    if not s or not s.get("n"):
        return "n/a"
    if s["n"] == 1:
        return fmt(s["median"])
    if fmt(s["low"]) == fmt(s["high"]):
        return f"{fmt(s['median'])} (all {s['n']} equal)"
    return f"{fmt(s['median'])} ({fmt(s['low'])} to {fmt(s['high'])}, n={s['n']})"
