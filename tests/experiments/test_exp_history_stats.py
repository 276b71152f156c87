"""History round trip and statistics on fixed inputs."""

import json

import pytest

from experiments.history import (FAULT_HEAL, FAULT_INJECT, FINAL_STATE, HistoryWriter, Op,
                                 read_history)
from experiments.stats import baseline_throughput, by_phase, summarize, time_buckets
from exp_helpers import history, op, steady


def test_writer_reader_round_trip(tmp_path):
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path, flush_every=3) as w:
        o = Op(2, "add", {"value": [1, "x"]}, 0.5, 0.501, 0.6, w.wall_at(0.501), "unknown",
               None, "TimeoutError", "n1", "fault")
        w.write_op(o)
        w.event(FAULT_INJECT, t=0.4, fault="f", label="pause primary")
        w.event(FAULT_HEAL, t=0.9, fault="f", label="pause primary")
        w.event(FINAL_STATE, set={1, 2})  # a set is written as a list
    h = read_history(path)
    assert h.meta["version"] == 1
    assert h.ops == [o]
    assert [(f.label, f.start, f.end) for f in h.fault_windows()] == [("pause primary", 0.4, 0.9)]
    assert sorted(h.final_state()["set"]) == [1, 2]
    assert not h.completed  # no run_end event


def test_reader_skips_torn_last_line(tmp_path):
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as w:
        w.write_op(Op(0, "get", None, 0, 0, 0.1, 0, "ok"))
    with open(path, "a") as f:
        f.write('{"type": "op", "client": 0, "op": "ge')  # killed mid-write
    h = read_history(path)
    assert len(h.ops) == 1 and h.truncated_lines == 1


def test_writer_buffers_until_flush(tmp_path):
    path = tmp_path / "history.jsonl"
    w = HistoryWriter(path, flush_every=1000)
    w.write_op(Op(0, "get", None, 0, 0, 0.1, 0, "ok"))
    assert path.read_text() == ""
    w.flush()
    assert len(path.read_text().splitlines()) == 2
    w.close()
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_unhealed_fault_window_is_open():
    from exp_helpers import fault
    h = history(*fault(3, None))
    assert h.fault_windows()[0].end is None


def test_summarize_percentiles_in_ms():
    ops = [op("get", None, 0, 0.001 * (i + 1)) for i in range(100)]  # 1..100 ms
    ops.append(op("get", None, 0, 0, outcome="fail", error="overload"))  # no latency
    s = summarize(ops)
    assert (s.total, s.ok, s.fail) == (101, 100, 1)
    assert s.latency.count == 100
    assert s.latency.p50_ms == pytest.approx(50, rel=0.01)
    assert s.latency.p99_ms == pytest.approx(99, rel=0.01)
    assert s.latency.max_ms == pytest.approx(100, rel=0.01)


def test_latency_is_from_intended_time():
    late = op("get", None, start=0.5, end=0.51, intended=0.0)
    assert summarize([late]).latency.max_ms == pytest.approx(510, rel=0.01)


def test_time_buckets_throughput_and_error_rate():
    ops = steady("get", 0, 2) + steady("get", 2, 3, outcome="fail")
    bs = time_buckets(ops, 1.0)
    assert [b.throughput for b in bs] == [10, 10, 0]
    assert [b.error_rate for b in bs] == [0, 0, 1]


def test_by_phase_and_baseline_throughput():
    ops = steady("get", 0, 5, phase="baseline") + steady("get", 5, 10, outcome="fail", phase="fault")
    h = history(ops)
    assert set(by_phase(h)) == {"baseline", "fault"}
    assert by_phase(h)["fault"].availability == 0
    assert baseline_throughput(h) == pytest.approx(10.0)
