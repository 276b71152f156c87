"""Registry, crash handling, verdict algebra and the generic checks."""

import pytest

from experiments.checks import (REGISTRY, CheckResult, UnknownCheckError, get_check,
                                run_check, run_checks, worst)
from experiments.checks.base import run_check as run_fn
from exp_helpers import fault, history, op, phase, steady


def test_worst_verdict_order():
    assert worst(["pass", "pass"]) == "pass"
    assert worst(["pass", "unknown"]) == "unknown"
    assert worst(["unknown", "fail", "pass"]) == "fail"
    assert worst([]) == "unknown"


def test_unknown_check_name_lists_known_ones():
    with pytest.raises(UnknownCheckError) as e:
        get_check("lost_writez")
    assert "lost_writes" in str(e.value) and "steady_state" in str(e.value)


def test_run_checks_validates_all_names_before_running():
    with pytest.raises(UnknownCheckError):
        run_checks(["errors_by_type", "nope"], history())


def test_crashing_check_reports_unknown_with_error_text():
    def boom(h, fs, p):
        raise ZeroDivisionError("division by zero in checker")
    r = run_fn("boom", boom, history(op("get")))
    assert r.verdict == "unknown"
    assert "ZeroDivisionError" in r.explanation and "division by zero" in r.metrics["error"]


def test_check_returning_garbage_reports_unknown():
    r = run_fn("bad", lambda h, fs, p: {"valid?": True}, history())
    assert r.verdict == "unknown"


def test_unknown_param_is_unknown_not_pass():
    r = run_check("steady_state", history(*steady("get", 0, 1)), {}, {"p99_max": 5})
    assert r.verdict == "unknown" and "p99_max_ms" in r.explanation


def test_every_registered_check_survives_an_empty_history():
    for name in REGISTRY:
        params = {"limit": 1, "window_s": 1} if name == "rate_limit" else {}
        r = run_check(name, history(), {}, params)
        assert isinstance(r, CheckResult) and r.verdict in ("pass", "unknown"), (name, r)


# ---------------------------------------------------------------- steady state

def _run(baseline_failures=0, recovery_latency=0.001):
    base = steady("get", 0, 10, phase="baseline")
    for o in base[:baseline_failures]:
        o.outcome, o.error = "fail", "ConnectionError"
    return history(phase("baseline", 0, 10), phase("fault", 10, 20), phase("recovery", 20, 30),
                   *fault(10, 20), base,
                   steady("get", 10, 20, outcome="fail", phase="fault"),
                   steady("get", 20, 30, latency=recovery_latency, phase="recovery"))


def test_steady_state_holds_outside_fault():
    r = run_check("steady_state", _run(), {}, {})
    assert r.verdict == "pass", r.explanation
    assert r.metrics["per_phase"]["fault"]["judged"] is False
    assert r.metrics["per_phase"]["recovery"]["judged"] is True


def test_steady_state_fails_on_availability_outside_fault():
    r = run_check("steady_state", _run(baseline_failures=2), {}, {})
    assert r.verdict == "fail" and "baseline: availability" in r.explanation


def test_steady_state_fails_on_p99_and_grace_excludes_recovery_time():
    h = _run(recovery_latency=0.2)
    assert run_check("steady_state", h, {}, {}).verdict == "fail"
    assert run_check("steady_state", h, {}, {"grace_s": 10}).verdict == "pass"


def test_steady_state_unknown_without_ops():
    assert run_check("steady_state", history(), {}, {}).verdict == "unknown"


def test_errors_by_type_counts_and_allowed():
    h = history(op("get", outcome="fail", error="ConnectionError"),
                op("get", outcome="unknown", error="TimeoutError"),
                op("get", outcome="unknown", error="TimeoutError"), op("get"))
    r = run_check("errors_by_type", h, {}, {"allowed": ["ConnectionError", "TimeoutError"]})
    assert r.verdict == "pass"
    assert r.metrics["by_type"] == {"TimeoutError": 2, "ConnectionError": 1}
    bad = run_check("errors_by_type", h, {}, {"allowed": ["TimeoutError"]})
    assert bad.verdict == "fail" and bad.metrics["unexpected"] == ["ConnectionError"]


# ---------------------------------------------------------------- detect / recover

def _outage(recovers=True):
    after = steady("get", 20, 30, phase="recovery", outcome="ok" if recovers else "fail")
    return history(*fault(10, 20), steady("get", 0, 10, phase="baseline"),
                   steady("get", 10, 20, phase="fault", outcome="fail", latency=0.3), after)


def test_time_to_detect():
    r = run_check("time_to_detect", _outage(), {}, {})
    assert r.verdict == "pass"
    assert r.metrics["detect_s"] == pytest.approx(0.3)
    assert run_check("time_to_detect", _outage(), {}, {"max_detect_s": 0.1}).verdict == "fail"


def test_time_to_detect_unknown_without_fault():
    assert run_check("time_to_detect", history(*steady("get", 0, 5)), {}, {}).verdict == "unknown"


def test_time_to_recover_pass():
    r = run_check("time_to_recover", _outage(), {}, {})
    assert r.verdict == "pass", r.explanation
    assert r.metrics["baseline_throughput"] == pytest.approx(10.0)
    assert r.metrics["first_success_s"] == pytest.approx(0.001)
    assert r.metrics["recover_s"] == pytest.approx(0.0)


def test_time_to_recover_fails_when_never_back():
    r = run_check("time_to_recover", _outage(recovers=False), {}, {})
    assert r.verdict == "fail" and "no operation succeeded" in r.explanation


def test_time_to_recover_throughput_delay():
    # after heal: 3 s at 4 ops/s (below 90% of 10/s), then 10/s again
    ops = steady("get", 20, 23, rate=4) + steady("get", 23, 30)
    h = history(*fault(10, 20), steady("get", 0, 10, phase="baseline"),
                steady("get", 10, 20, outcome="fail"), ops)
    r = run_check("time_to_recover", h, {}, {})
    assert r.metrics["recover_s"] == pytest.approx(3.0)
    assert run_check("time_to_recover", h, {}, {"max_recover_s": 2}).verdict == "fail"


def test_send_lag_generator_behind_is_unknown_not_fail():
    on_time = history(*steady("get", 0, 1))
    assert run_check("send_lag", on_time, {}).verdict == "pass"
    late = history(*[op("get", None, start=i / 10 + 0.05, intended=i / 10) for i in range(10)])
    r = run_check("send_lag", late, {})
    assert r.verdict == "unknown" and r.metrics["send_lag_p99_ms"] == pytest.approx(50)
