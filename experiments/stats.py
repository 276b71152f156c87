"""Statistics derived from a history: latency percentiles, throughput, errors, spread.

Every figure here is computed over the records it is given; callers pass the
workload's own operations after the warm-up (``History.workload``), never lock
steps or worker records.

Latencies are recorded into HdrHistograms in **microseconds** (1 µs to 1 h,
3 significant digits) and reported in **milliseconds** (keys ending ``_ms``).
Latency is ``end - intended`` (includes send lag: no coordinated omission).
Latency percentiles are those of **successful** operations; the time failed
operations took to fail is reported apart (``error_*_ms``). Operations dropped
by the load generator at its in-flight cap (error ``overload``) never ran:
they count as failures in availability and are counted as ``dropped`` beside
every latency figure, since their latency is unbounded and unknown.

Time buckets group operations by **completion time** (``end``): a bucket's
throughput is ok ops completed per second in it, and its error rate is the
share of ops completed in it that were not ok.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from .history import FAIL, OK, OVERLOAD, UNKNOWN, History, Op

HDR_LOW_US = 1
HDR_HIGH_US = 3_600_000_000  # 1 h in µs
HDR_DIGITS = 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}


def new_histogram() -> HdrHistogram:
    """An empty latency histogram (µs)."""
    return HdrHistogram(HDR_LOW_US, HDR_HIGH_US, HDR_DIGITS)


def dropped(op: Op) -> bool:
    """True for ops the load generator refused at its in-flight cap (they never ran)."""
    return op.error == OVERLOAD


def record(h: HdrHistogram, ops: Iterable[Op]) -> HdrHistogram:
    """Record the latency (µs, clamped to the histogram range) of ``ops``.
    Equal values are counted first: ``record_value`` is pure Python."""
    counts = Counter(round((o.end - o.intended) * 1e6) for o in ops if not dropped(o))
    for us, n in counts.items():
        h.record_value(min(max(us, HDR_LOW_US), HDR_HIGH_US), n)
    return h


@dataclass(frozen=True)
class LatencyStats:
    """Latency percentiles in ms over ``count`` operations."""

    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def latency_from_histogram(h: HdrHistogram, mean_ms: float | None = None
                           ) -> LatencyStats | None:
    """Percentiles of ``h`` (µs) in ms; None if empty. Pass ``mean_ms`` when
    known: ``HdrHistogram.get_mean_value`` walks every bucket in Python."""
    n = h.get_total_count()
    if n == 0:
        return None
    p = {k: h.get_value_at_percentile(v) / 1000 for k, v in PERCENTILES.items()}
    mean = h.get_mean_value() / 1000 if mean_ms is None else mean_ms
    return LatencyStats(n, p["p50"], p["p90"], p["p99"], p["p999"],
                        h.get_max_value() / 1000, mean)


def latency_stats(ops: Iterable[Op]) -> LatencyStats | None:
    """Latency percentiles of ``ops`` (None when none ran); callers choose which ops."""
    ran = [o for o in ops if not dropped(o)]
    if not ran:
        return None
    mean_ms = sum(o.latency for o in ran) / len(ran) * 1000
    return latency_from_histogram(record(new_histogram(), ran), mean_ms)


@dataclass(frozen=True)
class Summary:
    """What users saw over a set of workload ops.

    ``total`` = ``ok + fail + unknown + dropped``; ``availability`` = ok / total;
    ``latency``: successful ops only; ``error_latency``: how long the launched
    non-ok ops took to fail (time to error)."""

    total: int
    ok: int
    fail: int
    unknown: int
    dropped: int
    availability: float | None
    latency: LatencyStats | None
    error_latency: LatencyStats | None

    @property
    def error_rate(self) -> float | None:
        return None if self.availability is None else 1.0 - self.availability

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ops": self.total, "ok": self.ok, "fail": self.fail,
                             "unknown": self.unknown, "dropped": self.dropped,
                             "availability": self.availability,
                             "error_rate": self.error_rate}
        lat = self.latency.to_json() if self.latency else {}
        for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms"):
            d[k] = lat.get(k)
        err = self.error_latency.to_json() if self.error_latency else {}
        d["error_p50_ms"], d["error_p99_ms"] = err.get("p50_ms"), err.get("p99_ms")
        return d


def summarize(ops: Sequence[Op]) -> Summary:
    """Counts, availability, latency of successes and time to error of ``ops``."""
    counts = {OK: 0, FAIL: 0, UNKNOWN: 0}
    n_dropped = 0
    for o in ops:
        if dropped(o):
            n_dropped += 1
        else:
            counts[o.outcome] += 1
    n = len(ops)
    return Summary(n, counts[OK], counts[FAIL], counts[UNKNOWN], n_dropped,
                   counts[OK] / n if n else None, latency_stats(o for o in ops if o.ok),
                   latency_stats(o for o in ops if not o.ok))


@dataclass(frozen=True)
class Spread:
    """A figure over repeated measurements (fault cycles, repeated runs): median and
    range of the values that exist, and how many there were (``n``)."""

    median: float | None
    low: float | None
    high: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread:
        xs = sorted(float(v) for v in values if v is not None and not math.isnan(float(v)))
        if not xs:
            return cls(None, None, None, 0)
        return cls(statistics.median(xs), xs[0], xs[-1], len(xs))

    def overlaps(self, other: Spread) -> bool:
        """True when the two ranges overlap (or either is empty): no difference can be claimed."""
        if self.low is None or other.low is None or self.high is None or other.high is None:
            return True
        return self.low <= other.high and other.low <= self.high

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def baseline_throughput(history: History) -> float | None:
    """Mean ok workload ops/s before the first fault (after the warm-up), measured
    over the span of those ops' intended times."""
    ops = history.before_faults()
    if len(ops) < 2:
        return None
    span = ops[-1].intended - ops[0].intended
    if span <= 0:
        return None
    # n ops spread over span seconds: rate = (n - 1) / span for evenly spaced
    return sum(1 for o in ops if o.ok) * (len(ops) - 1) / len(ops) / span


@dataclass(frozen=True)
class Bucket:
    """One time bucket: ``start`` (s since t0), ``width`` (s), counts of ops
    completed in it, ``throughput`` (ok ops/s), ``error_rate`` (non-ok share,
    None if empty), latency p50/p99 of its successful ops (ms, None if none)."""

    start: float
    width: float
    total: int
    ok: int
    fail: int
    unknown: int
    p50_ms: float | None
    p99_ms: float | None

    @property
    def throughput(self) -> float:
        return self.ok / self.width

    @property
    def error_rate(self) -> float | None:
        return (self.total - self.ok) / self.total if self.total else None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["throughput"] = self.throughput
        d["error_rate"] = self.error_rate
        return d


def time_buckets(ops: Sequence[Op], width: float = 1.0,
                 start: float | None = None, end: float | None = None,
                 latency: bool = True) -> list[Bucket]:
    """Bucket ``ops`` by completion time into ``width``-second buckets from
    ``start`` (default: earliest intended time) to ``end`` (default: last
    completion). Empty buckets are included. ``latency=False`` skips the
    percentiles (faster)."""
    if width <= 0:
        raise ValueError(f"bucket width must be > 0 s, got {width}")
    if not ops:
        return []
    t0 = min(o.intended for o in ops) if start is None else start
    t1 = max(o.end for o in ops) if end is None else end
    n = max(1, int((t1 - t0) // width) + 1)
    slots: list[list[Op]] = [[] for _ in range(n)]
    for o in ops:
        i = int((o.end - t0) // width)
        if 0 <= i < n:
            slots[i].append(o)
    out = []
    for i, s in enumerate(slots):
        # a fresh histogram is cheaper than HdrHistogram.reset()
        lat = latency_stats(o for o in s if o.ok) if latency and s else None
        c = {OK: 0, FAIL: 0, UNKNOWN: 0}
        for o in s:
            c[o.outcome] += 1
        out.append(Bucket(t0 + i * width, width, len(s), c[OK], c[FAIL], c[UNKNOWN],
                          lat.p50_ms if lat else None, lat.p99_ms if lat else None))
    return out


def server_summary(history: History) -> dict[str, dict[str, Any]]:
    """What each Redis node reported over the run (from ``server_info`` events).

    Per node: samples, samples when it did not answer, roles seen, peak and mean
    ``instantaneous_ops_per_sec`` (load per node: a hot key shows as one busy node),
    peak ``used_memory`` (bytes), evictions and keyspace hit rate over the run
    (differences between first and last sample of a run of the same server; a
    restart resets counters, so increases are summed), peak replication lag (bytes)
    and peak connected clients.
    """
    per: dict[str, dict[str, Any]] = {}
    last: dict[str, dict[str, Any]] = {}
    for e in history.events:
        if e.kind != "server_info":
            continue
        f = e.fields
        node = f.get("node", "?")
        s = per.setdefault(node, {"samples": 0, "down_samples": 0, "roles": [], "ops_per_sec_peak": 0,
                                  "ops_per_sec_sum": 0, "used_memory_peak": 0, "evicted_keys": 0,
                                  "keyspace_hits": 0, "keyspace_misses": 0, "repl_lag_bytes_peak": 0,
                                  "connected_clients_peak": 0})
        s["samples"] += 1
        if not f.get("up", True):
            s["down_samples"] += 1
            continue
        role = f.get("role")
        if role and (not s["roles"] or s["roles"][-1] != role):
            s["roles"].append(role)
        ops = int(f.get("instantaneous_ops_per_sec") or 0)
        s["ops_per_sec_peak"] = max(s["ops_per_sec_peak"], ops)
        s["ops_per_sec_sum"] += ops
        s["used_memory_peak"] = max(s["used_memory_peak"], int(f.get("used_memory") or 0))
        s["repl_lag_bytes_peak"] = max(s["repl_lag_bytes_peak"], int(f.get("lag_bytes") or 0))
        s["connected_clients_peak"] = max(s["connected_clients_peak"], int(f.get("connected_clients") or 0))
        prev = last.get(node)
        for counter in ("evicted_keys", "keyspace_hits", "keyspace_misses"):
            now = int(f.get(counter) or 0)
            before = int(prev.get(counter) or 0) if prev else now
            s[counter] += now - before if now >= before else now  # counters reset on restart
        last[node] = f
    for s in per.values():
        up = s["samples"] - s["down_samples"]
        s["ops_per_sec_mean"] = s.pop("ops_per_sec_sum") / up if up else 0.0
        lookups = s["keyspace_hits"] + s["keyspace_misses"]
        s["hit_rate"] = s["keyspace_hits"] / lookups if lookups else None
    return per
