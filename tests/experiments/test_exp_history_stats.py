"""History round trip and statistics on fixed inputs."""

import json
from pathlib import Path

import pytest

from experiments.history import (
    FAULT_HEAL,
    FAULT_INJECT,
    FINAL_STATE,
    STEP,
    WARMUP,
    WORKER,
    HistoryWriter,
    Op,
    read_history,
)
from experiments.stats import Spread, baseline_throughput, summarize, time_buckets
from tests.experiments.exp_helpers import fault, history, op, phase, steady


def test_writer_reader_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path, flush_every=3) as w:
        o = Op(2, "add", {"value": [1, "x"]}, 0.5, 0.501, 0.6, w.wall_at(0.501), "unknown",
               None, "TimeoutError", "n1", "fault")
        w.write_op(o)
        w.event(FAULT_INJECT, t=0.4, fault="f", label="pause primary")
        w.event(FAULT_HEAL, t=0.9, fault="f", label="pause primary")
        w.event(FINAL_STATE, set={1, 2})  # a set is written as a list
    h = read_history(path)
    assert h.meta["version"] == 2
    assert h.ops == [o] and h.ops[0].kind == "workload"
    assert [(f.label, f.start, f.end) for f in h.fault_windows()] == [("pause primary", 0.4, 0.9)]
    assert sorted(h.final_state()["set"]) == [1, 2]
    assert not h.completed  # no run_end event


def test_reader_skips_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as w:
        w.write_op(Op(0, "get", None, 0, 0, 0.1, 0, "ok"))
    with open(path, "a") as f:
        f.write('{"type": "op", "client": 0, "op": "ge')  # killed mid-write
    h = read_history(path)
    assert len(h.ops) == 1 and h.truncated_lines == 1


def test_writer_buffers_until_flush(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    w = HistoryWriter(path, flush_every=1000)
    w.write_op(Op(0, "get", None, 0, 0, 0.1, 0, "ok"))
    assert path.read_text() == ""
    w.flush()
    assert len(path.read_text().splitlines()) == 2
    w.close()
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_unhealed_fault_window_is_open() -> None:
    from tests.experiments.exp_helpers import fault
    h = history(*fault(3, None))
    assert h.fault_windows()[0].end is None


def test_summarize_percentiles_in_ms() -> None:
    ops = [op("get", None, 0, 0.001 * (i + 1)) for i in range(100)]  # 1..100 ms
    ops.append(op("get", None, 0, 0, outcome="fail", error="overload"))  # dropped: no latency
    s = summarize(ops)
    assert (s.total, s.ok, s.fail, s.dropped) == (101, 100, 0, 1)
    assert s.latency is not None
    assert s.latency.count == 100
    assert s.latency.p50_ms == pytest.approx(50, rel=0.01)
    assert s.latency.p99_ms == pytest.approx(99, rel=0.01)
    assert s.latency.max_ms == pytest.approx(100, rel=0.01)


def test_latency_is_from_intended_time() -> None:
    late = op("get", None, start=0.5, end=0.51, intended=0.0)
    latency = summarize([late]).latency
    assert latency is not None
    assert latency.max_ms == pytest.approx(510, rel=0.01)


def test_time_buckets_throughput_and_error_rate() -> None:
    ops = steady("get", 0, 2) + steady("get", 2, 3, outcome="fail")
    bs = time_buckets(ops, 1.0)
    assert [b.throughput for b in bs] == [10, 10, 0]
    assert [b.error_rate for b in bs] == [0, 0, 1]


def test_baseline_throughput_is_measured_before_the_first_fault() -> None:
    ops = steady("get", 0, 5, phase="baseline") + steady("get", 5, 10, outcome="fail", phase="fault")
    h = history(*fault(5, 10), ops)
    assert baseline_throughput(h) == pytest.approx(10.0)


# ---------------------------------------------------------------- evidence: which records, which window

def test_latency_percentiles_are_those_of_successes_and_time_to_error_is_apart() -> None:
    # 10 successes at 5 ms and 90 timeouts at 250 ms: the old summary reported p99 = 250 ms,
    # the latency of errors, as "p99" while availability was 10 %
    ops = [op("get", None, 0, 0.005) for _ in range(10)]
    ops += [op("get", None, 0, 0.25, outcome="unknown") for _ in range(90)]
    s = summarize(ops)
    assert s.availability == pytest.approx(0.1)
    assert s.latency is not None and s.error_latency is not None
    assert s.latency.count == 10 and s.latency.p99_ms == pytest.approx(5, rel=0.01)
    assert s.error_latency.count == 90 and s.error_latency.p50_ms == pytest.approx(250, rel=0.01)
    assert s.to_json()["error_p50_ms"] == pytest.approx(250, rel=0.01)


def test_dropped_operations_count_as_failures_and_are_shown_beside_latency() -> None:
    ops = steady("get", 0, 1) + [op("?", None, 0.5, 0.5, outcome="fail", error="overload") for _ in range(5)]
    s = summarize(ops).to_json()
    assert s["dropped"] == 5 and s["ops"] == 15 and s["availability"] == pytest.approx(10 / 15)


def test_workload_figures_exclude_steps_worker_records_and_the_warm_up() -> None:
    ops = steady("get", 0, 1, phase=WARMUP) + steady("get", 1, 2, phase="baseline")
    for o in steady("acquire", 1, 2, outcome="fail"):
        o.kind = STEP
        ops.append(o)
    for o in steady("process", 1, 2):
        o.kind = WORKER
        ops.append(o)
    h = history(phase(WARMUP, 0, 1), phase("baseline", 1, 2), ops)
    assert len(h.workload) == 10 and {o.op for o in h.workload} == {"get"}
    assert h.warmup_end() == 1
    assert summarize(h.workload).availability == 1.0  # the failed steps are not workload operations


def test_cycles_are_the_fault_windows_from_inject_to_heal() -> None:
    h = history(*fault(2, 4), steady("get", 0, 10))
    h.events += fault(6, 8)
    h.events[-2].fields["fault"] = h.events[-1].fields["fault"] = "f2"
    h.__post_init__()
    cycles = h.cycles()
    assert [(c.index, c.start, c.heal, c.next) for c in cycles] == [(1, 2, 4, 6), (2, 6, 8, pytest.approx(9.901))]


def test_spread_is_median_and_range_and_overlap_decides_a_difference() -> None:
    a, b = Spread.of([0.2, 0.1, None, 0.3]), Spread.of([0.5, 0.6])
    assert (a.median, a.low, a.high, a.n) == (0.2, 0.1, 0.3, 3)
    assert not a.overlaps(b) and a.overlaps(Spread.of([0.25, 0.9])) and a.overlaps(Spread.of([]))


def test_history_lines_are_what_json_dumps_writes() -> None:
    import json

    from experiments.history import _compact_encoder, _jsonable
    encode = _compact_encoder()
    record: object
    for record in ({"type": "op", "args": {"k": (1, 2)}, "value": {3: "é\n"}, "x": float("nan"), "big": 10**30},
                   {"s": {1}, "b": b"\xff", "o": ValueError("x")}, [], "text", None):
        assert encode(record) == json.dumps(record, separators=(",", ":"), default=_jsonable)
