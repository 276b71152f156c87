"""Registry, crash handling, verdict algebra and the generic checks."""

from collections.abc import Mapping
from typing import Any, NoReturn

import pytest

from experiments.checks import REGISTRY, CheckResult, UnknownCheckError, get_check, run_check, run_checks, worst
from experiments.checks.base import run_check as run_fn
from experiments.history import History
from tests.experiments.exp_helpers import fault, history, op, phase, steady


def test_worst_verdict_order_ignores_measurements() -> None:
    assert worst(["held", "held"]) == "held"
    assert worst(["held", "unknown"]) == "unknown"
    assert worst(["unknown", "violated", "held"]) == "violated"
    assert worst(["held", None]) == "held"  # a measurement never moves the verdict
    assert worst([]) == "unknown" and worst([None]) == "unknown"


def test_unknown_check_name_lists_known_ones() -> None:
    with pytest.raises(UnknownCheckError) as e:
        get_check("lost_writez")
    assert "lost_writes" in str(e.value) and "steady_state" in str(e.value)


def test_run_checks_validates_all_names_before_running() -> None:
    with pytest.raises(UnknownCheckError):
        run_checks(["errors_by_type", "nope"], history())


def test_crashing_check_reports_unknown_with_error_text() -> None:
    def boom(h: History, fs: Mapping[str, Any], p: Mapping[str, Any]) -> NoReturn:
        raise ZeroDivisionError("division by zero in checker")
    r = run_fn("boom", boom, history(op("get")))
    assert r.verdict == "unknown"
    assert "ZeroDivisionError" in r.explanation and "division by zero" in r.metrics["error"]


def test_check_returning_garbage_reports_unknown() -> None:
    r = run_fn("bad", lambda h, fs, p: {"valid?": True},  # type: ignore[arg-type, return-value]  # on purpose
               history())
    assert r.verdict == "unknown"


def test_unknown_param_is_unknown_not_pass() -> None:
    r = run_check("steady_state", history(*steady("get", 0, 1)), {}, {"p99_max": 5})
    assert r.verdict == "unknown" and "p99_max_ms" in r.explanation


def test_every_registered_check_survives_an_empty_history() -> None:
    for name in REGISTRY:
        params = {"limit": 1, "window_s": 1} if name in ("rate_limit", "false_rejections") else {}
        r = run_check(name, history(), {}, params)
        assert isinstance(r, CheckResult) and r.verdict in ("unknown", None), (name, r)  # never "held" on nothing


def test_checks_that_cannot_fail_are_measurements_without_a_verdict() -> None:
    h = _outage()
    for name in ("errors_by_type", "time_to_detect", "failover_time", "cache_fallback"):
        assert run_check(name, h, {}, {}).verdict is None, name
    assert run_check("errors_by_type", h, {}, {"allowed": ["ConnectionError"]}).verdict == "held"


# ---------------------------------------------------------------- steady state

def _run(baseline_failures: int = 0, recovery_latency: float = 0.001) -> History:
    base = steady("get", 0, 10, phase="baseline")
    for o in base[:baseline_failures]:
        o.outcome, o.error = "fail", "ConnectionError"
    return history(phase("baseline", 0, 10), phase("fault", 10, 20), phase("recovery", 20, 30),
                   *fault(10, 20), base,
                   steady("get", 10, 20, outcome="fail", phase="fault"),
                   steady("get", 20, 30, latency=recovery_latency, phase="recovery"))


def test_steady_state_holds_outside_fault() -> None:
    r = run_check("steady_state", _run(), {}, {})
    assert r.verdict == "held", r.explanation
    assert set(r.metrics["per_segment"]) == {"before the fault", "after heal 1"}
    assert r.claim.startswith("steady state outside the fault")


def test_steady_state_fails_on_availability_outside_fault() -> None:
    r = run_check("steady_state", _run(baseline_failures=2), {}, {})
    assert r.verdict == "violated" and "before the fault: availability" in r.explanation


def test_during_fault_claim_judges_each_fault_window() -> None:
    r = run_check("during_fault", _run(), {}, {})
    assert r.verdict == "violated" and "fault 1: availability 0.00%" in r.explanation
    ok = history(*fault(10, 20), steady("get", 0, 30))
    assert run_check("during_fault", ok, {}, {}).verdict == "held"


def test_steady_state_ignores_lock_steps_and_worker_records() -> None:
    h = _run()
    for o in steady("acquire", 0, 10, outcome="fail") + steady("process", 20, 30, outcome="fail"):
        o.kind = "step" if o.op == "acquire" else "worker"
        h.ops.append(o)
    h.__post_init__()
    assert run_check("steady_state", h, {}, {}).verdict == "held"


def test_warm_up_is_excluded_from_the_steady_state() -> None:
    warm = steady("get", 0, 1, latency=0.15, phase="warmup")  # connection set-up: 150 ms
    h = history(phase("warmup", 0, 1), phase("baseline", 1, 10), warm, steady("get", 1, 10, phase="baseline"))
    r = run_check("steady_state", h, {}, {})
    assert r.verdict == "held", r.explanation


def test_steady_state_fails_on_p99_and_grace_excludes_recovery_time() -> None:
    h = _run(recovery_latency=0.2)
    assert run_check("steady_state", h, {}, {}).verdict == "violated"
    assert run_check("steady_state", h, {}, {"grace_s": 10}).verdict == "held"


def test_steady_state_unknown_without_ops() -> None:
    assert run_check("steady_state", history(), {}, {}).verdict == "unknown"


def test_errors_by_type_counts_and_allowed() -> None:
    h = history(op("get", outcome="fail", error="ConnectionError"),
                op("get", outcome="unknown", error="TimeoutError"),
                op("get", outcome="unknown", error="TimeoutError"), op("get"))
    r = run_check("errors_by_type", h, {}, {"allowed": ["ConnectionError", "TimeoutError"]})
    assert r.verdict == "held"
    assert r.metrics["by_type"] == {"TimeoutError": 2, "ConnectionError": 1}
    bad = run_check("errors_by_type", h, {}, {"allowed": ["TimeoutError"]})
    assert bad.verdict == "violated" and bad.metrics["unexpected"] == ["ConnectionError"]


# ---------------------------------------------------------------- detect / recover

def _outage(recovers: bool = True) -> History:
    after = steady("get", 20, 30, phase="recovery", outcome="ok" if recovers else "fail")
    return history(*fault(10, 20), steady("get", 0, 10, phase="baseline"),
                   steady("get", 10, 20, phase="fault", outcome="fail", latency=0.3), after)


def test_time_to_detect() -> None:
    r = run_check("time_to_detect", _outage(), {}, {})
    assert r.verdict is None  # a measurement
    assert r.metrics["detect_s"] == pytest.approx(0.3)
    assert run_check("time_to_detect", _outage(), {}, {"max_detect_s": 0.1}).verdict == "violated"


def test_time_to_detect_without_fault_measures_nothing() -> None:
    r = run_check("time_to_detect", history(*steady("get", 0, 5)), {}, {})
    assert r.verdict is None and "nothing to detect" in r.explanation


def test_time_to_recover_pass() -> None:
    r = run_check("time_to_recover", _outage(), {}, {})
    assert r.verdict == "held", r.explanation
    assert r.metrics["baseline_throughput"] == pytest.approx(10.0)
    assert r.metrics["first_success_s"] == pytest.approx(0.001)
    assert r.metrics["recover_s"] == pytest.approx(0.0)


def test_time_to_recover_fails_when_never_back() -> None:
    r = run_check("time_to_recover", _outage(recovers=False), {}, {})
    assert r.verdict == "violated" and "no operation succeeded" in r.explanation


def test_time_to_recover_throughput_delay() -> None:
    # after heal: 3 s at 4 ops/s (below 90% of 10/s), then 10/s again
    ops = steady("get", 20, 23, rate=4) + steady("get", 23, 30)
    h = history(*fault(10, 20), steady("get", 0, 10, phase="baseline"),
                steady("get", 10, 20, outcome="fail"), ops)
    r = run_check("time_to_recover", h, {}, {})
    assert r.metrics["recover_s"] == pytest.approx(3.0)
    assert run_check("time_to_recover", h, {}, {"max_recover_s": 2}).verdict == "violated"


def test_time_to_recover_is_not_fooled_by_worker_records_after_the_heal() -> None:
    # producers at 0 % after the heal, consumers busy: the old check counted the worker
    # records as throughput and said the service had recovered
    workers = steady("process", 20, 30, rate=20)
    for o in workers:
        o.kind = "worker"
    h = history(*fault(10, 20), steady("produce", 0, 10, phase="baseline"),
                steady("produce", 10, 30, outcome="fail"), workers)
    r = run_check("time_to_recover", h, {}, {})
    assert r.verdict == "violated" and "no operation succeeded again" in r.explanation


def test_send_lag_generator_behind_is_unknown_not_fail() -> None:
    on_time = history(*steady("get", 0, 1))
    assert run_check("send_lag", on_time, {}).verdict == "held"
    late = history(*[op("get", None, start=i / 10 + 0.05, intended=i / 10) for i in range(10)])
    r = run_check("send_lag", late, {})
    assert r.verdict == "unknown" and r.metrics["send_lag_p99_ms"] == pytest.approx(50)


def _late(ops: list, lag_s: float, every: int = 1) -> list:
    """Ops the generator sent ``lag_s`` late (every ``every``-th one), each served at once."""
    for i, o in enumerate(ops):
        if i % every == 0:
            o.start += lag_s
            o.end += lag_s
    return ops


def test_a_p99_excess_that_is_the_generators_own_lag_is_undecided_not_violated() -> None:
    # before the fault every op was sent 120 ms late (a stalled generator) and served in 1 ms
    base = _late(steady("get", 0, 10, phase="baseline"), 0.120)
    h = history(phase("baseline", 0, 10), phase("fault", 10, 20), phase("recovery", 20, 30), *fault(10, 20), base,
                steady("get", 20, 30, phase="recovery"))
    r = run_check("steady_state", h, {}, {})
    assert r.verdict == "unknown", r.explanation
    assert "load generator fell behind" in r.explanation and "from the actual send p99 is 1.0 ms" in r.explanation


def test_a_slow_server_is_still_violated_when_the_generator_also_lagged() -> None:
    # sent 20 ms late *and* served in 150 ms: Redis was slow even counted from the send
    base = _late(steady("get", 0, 10, latency=0.150, phase="baseline"), 0.020)
    h = history(phase("baseline", 0, 10), phase("fault", 10, 20), phase("recovery", 20, 30), *fault(10, 20), base,
                steady("get", 20, 30, phase="recovery"))
    r = run_check("steady_state", h, {}, {})
    assert r.verdict == "violated" and "before the fault: p99" in r.explanation


def test_a_generator_on_schedule_leaves_a_p99_excess_violated() -> None:
    r = run_check("steady_state", _run(recovery_latency=0.2), {}, {})
    assert r.verdict == "violated" and "after heal 1: p99" in r.explanation
