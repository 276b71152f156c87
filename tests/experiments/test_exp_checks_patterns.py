"""Pattern checks on small hand-written histories: one valid, one violating each."""

from typing import Any

import pytest

from experiments.checks import run_check
from experiments.history import History, Op, Outcome
from tests.experiments.exp_helpers import fault, history, op

# ---------------------------------------------------------------- writes (set, counter)

def _set_history() -> History:
    return history(*[op("add", {"value": v}, start=v) for v in range(1, 6)],
                   op("add", {"value": 6}, start=6, outcome="unknown"),
                   op("add", {"value": 7}, start=7, outcome="fail"))


def test_lost_writes_valid_unknown_may_be_present() -> None:
    r = run_check("lost_writes", _set_history(), {"set": [1, 2, 3, 4, 5, 6]})
    assert r.verdict == "held", r.explanation
    assert r.metrics["acked"] == 5 and r.metrics["unknown_present"] == 1


def test_lost_writes_detects_lost_acked_write() -> None:
    r = run_check("lost_writes", _set_history(), {"set": [1, 2, 4, 5]})
    assert r.verdict == "violated"
    assert r.metrics["lost"] == 1 and r.metrics["lost_examples"] == [3]


def test_lost_writes_failed_write_present_is_a_violation() -> None:
    r = run_check("lost_writes", _set_history(), {"set": [1, 2, 3, 4, 5, 7]})
    assert r.verdict == "violated" and r.metrics["failed_present"] == 1


def test_lost_writes_without_final_read_is_unknown() -> None:
    assert run_check("lost_writes", _set_history(), {}).verdict == "unknown"
    r = run_check("lost_writes", _set_history(), {"final_read_error": "ConnectionError: gone"})
    assert r.verdict == "unknown" and "ConnectionError: gone" in r.explanation


def test_lost_writes_compares_values_as_redis_stores_them() -> None:
    """An int written (SADD 5) comes back as "5" or b"5": the same member, not a lost write."""
    r = run_check("lost_writes", _set_history(), {"set": [b"1", "2", "3", 4, "5"]})
    assert r.verdict == "held", r.explanation
    r = run_check("lost_writes", _set_history(), {"set": ["1", "2", "4", "5"]})
    assert r.verdict == "violated" and r.metrics["lost_examples"] == [3]


def test_lost_writes_within_the_loss_window_is_reported_beside_the_total() -> None:
    # 100 writes acknowledged before the fault, 10 during the partition, 5 after the heal but before
    # the old primary was demoted (the role event at 12.5 s), 10 after: the 15 in the window are lost.
    writes = [op("add", {"value": i}, i * 0.05) for i in range(100)]
    writes += [op("add", {"value": 100 + i}, 10 + i * 0.1) for i in range(10)]
    writes += [op("add", {"value": 200 + i}, 12 + i * 0.1) for i in range(5)]
    writes += [op("add", {"value": 300 + i}, 13 + i * 0.1) for i in range(10)]
    from experiments.history import ROLE
    from tests.experiments.exp_helpers import ev
    h = history(writes, *fault(10, 12), ev(ROLE, 12.5, node="redis-1", role="replica"))
    final = list(range(100)) + [300 + i for i in range(10)]
    r = run_check("lost_writes", h, {"set": final}, {})
    assert r.verdict == "violated" and r.metrics["lost"] == 15
    assert r.metrics["lost_ratio"] == pytest.approx(15 / 125)  # diluted by everything acknowledged
    assert r.metrics["acked_in_windows"] == 15 and r.metrics["lost_ratio_in_windows"] == 1.0
    assert r.metrics["windows"][0]["end"] == 12.5 and "within the fault windows 15 of 15" in r.explanation


def _incr_history() -> History:
    return history(op("incr", {"amount": 1}, 0), op("incr", {"amount": 1}, 1),
                   op("incr", {"amount": 1}, 2), op("incr", {"amount": 1}, 3, outcome="unknown"),
                   op("incr", {"amount": 1}, 4, outcome="fail"))


@pytest.mark.parametrize("final", [3, 4])
def test_counter_within_bounds(final: int) -> None:
    assert run_check("counter", _incr_history(), {"counter": final}).verdict == "held"


def test_counter_lost_and_phantom_increments() -> None:
    lost = run_check("counter", _incr_history(), {"counter": 2})
    assert lost.verdict == "violated" and lost.metrics["lost"] == 1
    assert run_check("counter", _incr_history(), {"counter": 5}).verdict == "violated"


# ---------------------------------------------------------------- leaderboard

def _zincr() -> History:
    return history(op("zincrby", {"member": "ann", "amount": 10}, 0),
                   op("zincrby", {"member": "ann", "amount": 5}, 1),
                   op("zincrby", {"member": "bob", "amount": 3}, 2),
                   op("zincrby", {"member": "bob", "amount": 2}, 3, outcome="unknown"))


def test_leaderboard_valid() -> None:
    r = run_check("leaderboard_increments", _zincr(), {"scores": {"ann": 15, "bob": 5}})
    assert r.verdict == "held", r.explanation


def test_leaderboard_lost_increments() -> None:
    r = run_check("leaderboard_increments", _zincr(), {"scores": {"ann": 10, "bob": 3}})
    assert r.verdict == "violated"
    assert r.metrics["lost_sum"] == 5 and r.metrics["lost_examples"] == {"ann": 5}


# ---------------------------------------------------------------- cache

def _cache(read_revision: int, read_start: float = 4.0, invalidated: bool = True) -> History:
    """Two writes committed as revisions 1 and 2 (acknowledged at 1 and 3), then one read."""
    return history(op("write", {"key": "k"}, 0, 1, value={"revision": 1, "invalidated": True}),
                   op("write", {"key": "k"}, 2, 3, value={"revision": 2, "invalidated": invalidated}),
                   op("read", {"key": "k"}, read_start, read_start + 0.1,
                      value={"revision": read_revision, "source": "cache"}))


def test_cache_fresh_read_and_concurrent_read_are_not_stale() -> None:
    assert run_check("cache_stale_reads", _cache(2), {}).verdict == "held"
    # read started while revision 2 was not yet acknowledged: revision 1 is fine
    r = run_check("cache_stale_reads", _cache(1, read_start=2.5), {})
    assert r.verdict == "held" and r.metrics["stale_reads"] == 0


def test_cache_stale_read_and_max_staleness() -> None:
    r = run_check("cache_stale_reads", _cache(1), {})
    assert r.verdict == "violated"
    assert r.metrics["stale_reads"] == 1
    assert r.metrics["max_staleness_s"] == pytest.approx(1.0)  # read at 4, revision 2 acked at 3
    tolerant = run_check("cache_stale_reads", _cache(1), {}, {"max_staleness_s": 2.0})
    assert tolerant.verdict == "held" and tolerant.metrics["stale_reads"] == 1


def test_cache_phantom_revision_fails() -> None:
    assert run_check("cache_stale_reads", _cache(9), {}).verdict == "violated"  # only 2 writes were ever tried


def test_cache_staleness_follows_the_database_commit_order_not_the_launch_order() -> None:
    # versions assigned at launch: "v6" launched after "v5" but committed first (revision 1), "v5" committed
    # second (revision 2): the database holds v5. A read of revision 2 is fresh, though its price is the
    # older version; judged by launch order it looked stale.
    h = history(op("write", {"key": "k", "version": 6}, 0.0, 1.0, value={"revision": 1, "invalidated": True}),
                op("write", {"key": "k", "version": 5}, 0.0, 1.5, value={"revision": 2, "invalidated": True}),
                op("read", {"key": "k"}, 2.0, 2.1, value={"revision": 2, "version": 5, "source": "db"}))
    assert run_check("cache_stale_reads", h, {}).verdict == "held"
    assert run_check("cache_read_your_writes", h, {}).verdict == "held"


def test_cache_read_your_writes_after_an_acknowledged_invalidation() -> None:
    r = run_check("cache_read_your_writes", _cache(1), {})
    assert r.verdict == "violated" and r.metrics["by_source"] == {"cache": 1}
    # the invalidation of revision 2 failed: the pattern promises only the TTL bound then
    assert run_check("cache_read_your_writes", _cache(1, invalidated=False), {}).verdict == "held"


def _fallback() -> History:
    base = [op("read", {"key": i}, i * 0.1, value={"source": "db" if i % 10 == 0 else "cache"},
               phase="baseline") for i in range(20)]   # 10% misses: 0.1 db query/request
    during = [op("read", {"key": i}, 10 + i * 0.1, value={"source": "fallback"}, phase="fault")
              for i in range(20)]                         # all from the db: 1 query/request
    return history(base, during, *fault(10, 12))


def test_cache_fallback_ratio_and_amplification() -> None:
    r = run_check("cache_fallback", _fallback(), {})
    assert r.verdict is None  # a measurement unless a limit is set
    assert r.metrics["per_window"]["during the fault"]["fallback_ratio"] == 1.0
    assert r.metrics["max_amplification"] == pytest.approx(10.0)


def test_cache_fallback_amplification_limit() -> None:
    r = run_check("cache_fallback", _fallback(), {}, {"max_amplification": 3})
    assert r.verdict == "violated" and "amplification" in r.explanation


# ---------------------------------------------------------------- lock

def _locks(second_acquire_at: float) -> History:
    return history(op("acquire", {"lock": "L"}, 0, 0.1, client=0, value={"token": 1}),
                   op("release", {"lock": "L"}, 1.0, 1.1, client=0),
                   op("acquire", {"lock": "L"}, second_acquire_at, second_acquire_at + 0.1,
                      client=1, value={"token": 2}),
                   op("release", {"lock": "L"}, 2.0, 2.1, client=1))


def test_lock_no_overlap() -> None:
    r = run_check("lock_overlap", _locks(1.2), {})
    assert r.verdict == "held" and r.metrics["holds"] == 2


def test_lock_overlapping_holders() -> None:
    r = run_check("lock_overlap", _locks(0.5), {})
    assert r.verdict == "violated"
    assert r.metrics["overlaps"] == 1
    assert r.metrics["max_overlap_s"] == pytest.approx(0.4)  # client 1 holds from 0.6, client 0 until 1.0


def test_lock_failed_acquire_is_not_a_hold() -> None:
    h = history(op("acquire", {"lock": "L"}, 0, 0.1, client=0),
                op("acquire", {"lock": "L"}, 0.5, 0.6, client=1, outcome="fail"),
                op("release", {"lock": "L"}, 1.0, 1.1, client=0))
    assert run_check("lock_overlap", h, {}).verdict == "held"


def _fenced(stale_accepted: bool) -> History:
    return history(op("fenced_write", {"lock": "L", "token": 1, "holder": "a"}, 0, 0.1, value=True),
                   op("fenced_write", {"lock": "L", "token": 2, "holder": "b"}, 1, 1.1, value=True),
                   op("fenced_write", {"lock": "L", "token": 1, "holder": "a"}, 2, 2.1, value=stale_accepted,
                      client=1))


def test_fencing_rejects_stale_token() -> None:
    r = run_check("fencing", _fenced(False), {})
    assert r.verdict == "held" and r.metrics["fenced_rejections"] == 1


def test_fencing_violation_when_stale_token_accepted() -> None:
    r = run_check("fencing", _fenced(True), {})
    assert r.verdict == "violated" and r.metrics["violations"] == 1


def _reused(second_accepted: bool) -> History:
    """A failover lost the fence INCR: two holders got fence 7."""
    return history(op("fenced_write", {"lock": "L", "token": 7, "holder": "a"}, 0, 0.1, value=True),
                   op("fenced_write", {"lock": "L", "token": 7, "holder": "b"}, 1, 1.1, value=second_accepted,
                      client=1))


def test_fencing_an_equal_fence_from_another_holder_is_a_reuse() -> None:
    accepted = run_check("fencing", _reused(True), {})
    assert accepted.verdict == "violated" and accepted.metrics["fence_reuses"] == 1
    assert accepted.metrics["examples"][0]["reused"] is True and "reused" in accepted.explanation
    rejected = run_check("fencing", _reused(False), {})
    assert rejected.verdict == "held" and rejected.metrics["fence_reuses"] == 1
    assert "fence reused" in rejected.explanation


def test_fencing_says_whether_the_fence_source_survived_the_failover() -> None:
    r = run_check("fencing", _reused(False), {"fence_counters": {"L": 5}})
    assert r.metrics["fence_source_regressed"] == ["L"] and "did not survive the failover" in r.explanation
    r = run_check("fencing", _reused(False), {"fence_counters": {"L": 9}})
    assert r.metrics["fence_source_regressed"] == [] and "never went back" in r.explanation


# ---------------------------------------------------------------- rate limiter

def _req(t: float, allowed: object, outcome: Outcome = "ok") -> Op:
    return op("request", {"key": "u1"}, t, t + 0.01, outcome=outcome,
              value={"allowed": allowed} if outcome == "ok" else None)


LIMIT = {"limit": 2, "window_s": 1.0}


def test_rate_limit_valid() -> None:
    h = history(_req(0.1, True), _req(0.2, True), _req(0.3, False), _req(1.1, True))
    r = run_check("rate_limit", h, {}, LIMIT)
    assert r.verdict == "held", r.explanation
    assert r.metrics["over_admitted"] == 0 and r.metrics["false_rejections"] == 0


def test_rate_limit_over_admission() -> None:
    h = history(_req(0.1, True), _req(0.2, True), _req(0.3, True))
    r = run_check("rate_limit", h, {}, LIMIT)
    assert r.verdict == "violated" and r.metrics["over_admitted"] == 1


def test_rate_limit_false_rejection() -> None:
    h = history(_req(1.1, True), _req(1.2, False), _req(1.3, "x", outcome="fail"))
    r = run_check("false_rejections", h, {}, LIMIT)
    assert r.metrics["false_rejections"] == 1 and r.metrics["errors"] == 1
    assert r.verdict is None  # a measurement, unless a ratio limit is set
    strict = run_check("false_rejections", h, {}, {**LIMIT, "max_false_rejection_ratio": 0.0})
    assert strict.verdict == "violated" and strict.claim == "no request rejected while under the limit"
    assert run_check("rate_limit", h, {}, LIMIT).verdict == "held"  # nothing over-admitted


def test_rate_limit_sliding_window_catches_boundary_burst() -> None:
    h = history(_req(0.5, True), _req(0.9, True), _req(1.2, True))
    assert run_check("rate_limit", h, {}, LIMIT).verdict == "held"  # fixed: 2 + 1
    r = run_check("rate_limit", h, {}, {**LIMIT, "mode": "sliding"})
    assert r.verdict == "violated" and r.metrics["over_admitted"] == 1


def test_rate_limit_requires_limit() -> None:
    assert run_check("rate_limit", history(_req(0.1, True)), {}).verdict == "unknown"


# ---------------------------------------------------------------- queue

def _queue(processed: tuple[int, ...] = (1, 2, 3)) -> History:
    h = [op("produce", {"id": i}, i) for i in (1, 2, 3)]
    h += [op("process", {"id": i}, 10 + i) for i in processed]
    return history(h)


def test_queue_all_processed() -> None:
    r = run_check("queue_delivery", _queue(), {"pending": []})
    assert r.verdict == "held" and r.metrics["lost"] == 0


def test_queue_lost_acknowledged_message() -> None:
    r = run_check("queue_delivery", _queue((1, 2)), {"pending": []})
    assert r.verdict == "violated" and r.metrics["lost_examples"] == [3]
    # still in the queue at the end: not lost
    assert run_check("queue_delivery", _queue((1, 2)), {"pending": [3]}).verdict == "held"


def test_queue_duplicates_and_redelivery_delay() -> None:
    h = history(op("produce", {"id": 1}, 0),
                op("process", {"id": 1}, 1, 2, outcome="unknown", client=0),  # consumer died
                op("process", {"id": 1}, 5, 6, client=1))                        # redelivered
    r = run_check("queue_delivery", h, {"pending": []})
    assert r.verdict == "held"
    assert r.metrics["redeliveries"] == 1 and r.metrics["redelivery_max_s"] == pytest.approx(3.0)
    assert run_check("queue_delivery", h, {}, {"max_redelivery_s": 1.0}).verdict == "violated"
    dup = history(op("produce", {"id": 1}, 0), op("process", {"id": 1}, 1),
                  op("process", {"id": 1}, 2, client=1))
    assert run_check("queue_delivery", dup, {}).metrics["duplicates"] == 1
    assert run_check("queue_delivery", dup, {}, {"allow_duplicates": False}).verdict == "violated"


# ---------------------------------------------------------------- proximity

def _geo(result: list[Any], removed: bool = False) -> History:
    h = [op("geoadd", {"member": "a", "lon": 0.0, "lat": 0.0}, 0),
         op("geoadd", {"member": "b", "lon": 0.01, "lat": 0.0}, 1),          # ~1.1 km east
         op("geoadd", {"member": "c", "lon": 0.0, "lat": 0.0}, 2, outcome="unknown")]
    if removed:
        h.append(op("georem", {"member": "a"}, 3))
    h.append(op("geosearch", {"lon": 0.0, "lat": 0.0, "radius_m": 500}, 5, value=result))
    return history(h)


def test_geo_valid_and_unknown_write_is_ambiguous() -> None:
    r = run_check("proximity_results", _geo(["a"]), {})
    assert r.verdict == "held", r.explanation
    assert r.metrics["ambiguous_skipped"] == 1  # c may or may not be there


def test_geo_missing_result() -> None:
    r = run_check("proximity_results", _geo([]), {})
    assert r.verdict == "violated" and r.metrics["missing"] == 1


def test_geo_stale_results() -> None:
    assert run_check("proximity_results", _geo(["a", "b"]), {}).metrics["stale"] == 1   # out of range
    r = run_check("proximity_results", _geo([["a", 0.0]], removed=True), {})            # removed
    assert r.verdict == "violated" and r.metrics["stale"] == 1
