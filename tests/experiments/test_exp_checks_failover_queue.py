"""failover_time and the queue's stuck / redelivered accounting, on hand-written histories."""
from __future__ import annotations

from experiments.analysis import analyze
from experiments.checks import run_check
from experiments.history import ROLE, RUN_END, SERVER_INFO, TOPOLOGY, WORKER, Event
from tests.experiments.exp_helpers import ev, fault, history, op, steady


def _roles(*items: tuple[float, str, str]) -> list:
    return [ev(ROLE, t, node=node, role=role) for t, node, role in items]


def test_failover_time_measures_the_first_promotion_after_the_fault() -> None:
    h = history(_roles((0.1, "redis-1", "primary"), (0.1, "redis-2", "replica"), (5.0, "redis-1", "down"),
                       (7.5, "redis-2", "primary")), fault(5.0, 15.0))
    r = run_check("failover_time", h, {}, {})
    assert r.verdict is None and r.metrics["failover_s"] == 2.5  # a measurement
    assert r.metrics["failovers"][0]["promoted"] == "redis-2"
    assert r.metrics["resolution_s"] == 0.5  # the server view samples INFO every 0.5 s; the figure says so


def test_failover_time_comes_from_sentinel_switch_master_with_its_resolution() -> None:
    # the server view saw the new role only at 8.0 s (0.5 s sampling); Sentinel announced it at 7.12 s
    h = history(_roles((0.1, "redis-1", "primary"), (0.1, "redis-2", "replica"), (8.0, "redis-2", "primary")),
                ev(TOPOLOGY, 6.2, source="sentinel-2", event="+odown", detail="master lab 127.0.0.1 7101"),
                ev(TOPOLOGY, 7.12, source="sentinel-1", event="+switch-master",
                   detail="lab 127.0.0.1 7101 127.0.0.1 7102", promoted="redis-2", resolution_s=0.001),
                fault(5.0, 15.0))
    r = run_check("failover_time", h, {}, {})
    f = r.metrics["failovers"][0]
    assert abs(f["failover_s"] - 2.12) < 1e-9
    assert f["promoted"] == "redis-2" and f["observed_by"] == "sentinel-1 +switch-master"
    assert abs(f["odown_s"] - 1.2) < 1e-9 and r.metrics["resolution_s"] == 0.001


def test_failover_time_fails_when_no_replica_is_promoted_within_the_limit() -> None:
    h = history(_roles((0.1, "redis-1", "primary"), (5.0, "redis-1", "down"), (15.2, "redis-1", "primary")),
                fault(5.0, 15.0))
    r = run_check("failover_time", h, {}, {"max_failover_s": 5})
    assert r.verdict == "violated" and r.metrics["failover_s"] is None


def test_failover_time_without_role_samples_measures_nothing() -> None:
    r = run_check("failover_time", history(fault(1.0, 2.0)), {}, {})
    assert r.verdict is None and r.metrics["failover_s"] is None


def test_queue_counts_redelivered_messages_and_passes_when_all_were_processed() -> None:
    h = history(op("produce", {"id": "a"}, 0.0), op("produce", {"id": "b"}, 0.1),
                op("process", {"id": "a", "deliveries": 1}, 0.5), op("process", {"id": "b", "deliveries": 2}, 3.0))
    r = run_check("queue_delivery", h, {"pending": [], "effects": ["a", "b"]}, {"max_stuck": 0})
    assert r.verdict == "held" and r.metrics["redelivered_messages"] == 1 and r.metrics["lost"] == 0


def test_queue_fails_when_acknowledged_messages_are_stuck_after_the_drain() -> None:
    h = history(op("produce", {"id": "a"}, 0.0), op("produce", {"id": "b"}, 0.1),
                op("process", {"id": "a", "deliveries": 1}, 0.5))
    r = run_check("queue_delivery", h, {"pending": ["b"], "effects": ["a"]}, {"max_stuck": 0})
    assert r.verdict == "violated" and r.metrics["pending_unprocessed"] == 1 and r.metrics["lost"] == 0


def test_queue_effect_store_counts_a_job_whose_worker_died_before_recording_it() -> None:
    h = history(op("produce", {"id": "a"}, 0.0))
    r = run_check("queue_delivery", h, {"pending": [], "effects": ["a"]}, {})
    assert r.verdict == "held" and r.metrics["processed_without_record"] == 1


def test_server_summary_sums_counter_increases_across_a_restart_and_notes_unanswered_samples() -> None:
    from experiments.stats import server_summary

    def info(t: float, **f: object) -> Event:
        return ev("server_info", t, node="redis-1", **f)

    h = history(info(0.0, up=True, role="primary", keyspace_hits=10, keyspace_misses=10, evicted_keys=0,
                     instantaneous_ops_per_sec=100, used_memory=1000),
                info(1.0, up=True, role="primary", keyspace_hits=40, keyspace_misses=20, evicted_keys=5,
                     instantaneous_ops_per_sec=300, used_memory=3000),
                info(2.0, up=False, error="ConnectionError"),
                info(3.0, up=True, role="replica", keyspace_hits=6, keyspace_misses=4, evicted_keys=0,
                     instantaneous_ops_per_sec=50, used_memory=500))
    s = server_summary(h)["redis-1"]
    assert s["keyspace_hits"] == 30 + 6 and s["keyspace_misses"] == 10 + 4  # restart: counters started over
    assert s["evicted_keys"] == 5 and s["down_samples"] == 1 and s["samples"] == 4
    assert s["roles"] == ["primary", "replica"] and s["ops_per_sec_peak"] == 300 and s["used_memory_peak"] == 3000
    assert abs(s["hit_rate"] - 36 / 50) < 1e-9


def test_a_pattern_exception_is_classified_by_the_redis_error_that_caused_it() -> None:
    import redis

    from experiments.workload import classify

    class BoundaryError(Exception):
        pass

    def wrapped(cause: BaseException) -> BoundaryError:
        try:
            raise BoundaryError("pattern gave up") from cause
        except BoundaryError as exc:
            return exc

    assert classify(wrapped(redis.TimeoutError("t"))) == ("unknown", "BoundaryError(TimeoutError)")
    assert classify(wrapped(redis.exceptions.ReadOnlyError("ro"))) == ("fail", "BoundaryError(ReadOnlyError)")
    # no Redis error behind it: no evidence that nothing was written
    assert classify(BoundaryError("no cause")) == ("unknown", "BoundaryError")


def _switch(t: float) -> Event:
    return ev(TOPOLOGY, t, source="sentinel-1", event="+switch-master",
              detail="lab 127.0.0.1 7101 127.0.0.1 7102", promoted="redis-2", resolution_s=0.001)


def test_failover_time_splits_each_outage_into_redis_and_client_share() -> None:
    # fault at 5.0, promotion at 7.0; the client's writes fail until 7.4 and are served again at 7.41
    # (the first ok after the last failure)
    ops = [op("set", start=t / 10, end=t / 10 + 0.01, outcome="fail" if 50 <= t < 74 else "ok")
           for t in range(140)]
    h = history(*ops, _switch(7.0), fault(5.0, 12.0))
    r = run_check("failover_time", h, {}, {})
    f = r.metrics["failovers"][0]
    assert abs(f["failover_s"] - 2.0) < 1e-9
    assert abs(f["client_s"] - 0.41) < 1e-9 and abs(f["served_again_s"] - 2.41) < 1e-9
    assert abs(r.metrics["client_s"] - 0.41) < 1e-9 and r.metrics["client_spread"]["n"] == 1
    assert "Redis needed 2.0 s to promote; clients needed 410 ms more." in r.explanation


def test_client_share_is_none_when_clients_recover_only_after_the_heal_or_never_failed() -> None:
    failing_until_heal = [op("set", start=t / 10, end=t / 10 + 0.01, outcome="fail" if 50 <= t < 125 else "ok")
                          for t in range(140)]
    r = run_check("failover_time", history(*failing_until_heal, _switch(7.0), fault(5.0, 12.0)), {}, {})
    f = r.metrics["failovers"][0]
    assert f["client_s"] is None and f["served_after_heal"] and f["failover_s"] == 2.0
    assert "served again only after the heal" in r.explanation
    never_failed = [op("get", start=t / 10) for t in range(140)]
    r = run_check("failover_time", history(*never_failed, _switch(7.0), fault(5.0, 12.0)), {}, {})
    assert r.metrics["failovers"][0]["client_s"] is None and not r.metrics["failovers"][0]["clients_failed"]
    assert "Clients saw no failure." in r.explanation


def test_a_client_served_by_the_new_primary_before_the_announcement_has_no_negative_share() -> None:
    ops = [op("set", start=t / 10, end=t / 10 + 0.01, outcome="fail" if 50 <= t < 69 else "ok")
           for t in range(140)]
    r = run_check("failover_time", history(*ops, _switch(7.0), fault(5.0, 12.0)), {}, {})
    assert r.metrics["failovers"][0]["client_s"] == 0.0


def test_failover_time_reports_a_second_failover_in_the_same_cycle() -> None:
    """Seen in the Docker catalogue (lock-kill, counter-kill): redis-2 promoted 2.2 s after the kill,
    then redis-3 2.2 s later; each Sentinel publishes its own +switch-master, so one switch is several
    events."""
    def switch(t: float, source: str, old: int, new: int) -> Event:
        return ev(TOPOLOGY, t, source=source, event="+switch-master",
                  detail=f"lab 127.0.0.1 {old} 127.0.0.1 {new}", promoted=f"redis-{new - 7100}", resolution_s=0.001)

    h = history(switch(7.2, "sentinel-2", 7101, 7102), switch(7.21, "sentinel-1", 7101, 7102),
                switch(9.4, "sentinel-1", 7102, 7103), switch(9.41, "sentinel-3", 7102, 7103),
                fault(5.0, 15.0), fault(20.0, 25.0), switch(22.2, "sentinel-1", 7103, 7101))
    r = run_check("failover_time", h, {}, {})
    first, second = r.metrics["failovers"]
    assert first["promoted"] == "redis-2" and abs(first["failover_s"] - 2.2) < 1e-9
    assert [(x["promoted"], round(x["after_s"], 3)) for x in first["later"]] == [("redis-3", 4.4)]
    assert second["later"] == [] and r.metrics["second_failovers"] == 1
    assert "Then redis-3 promoted 4.4 s after the fault: another failover." in r.explanation
    assert abs(r.metrics["spread"]["high"] - 2.2) < 1e-9  # the figure is the first promotion's, not 4.4 s


def _observer_run(samples_until: float) -> list:
    """An observer that sampled INFO every 0.5 s until ``samples_until``, a kill at 4 s healed at 8 s,
    no promotion recorded, the workload ending at 13 s."""
    samples = [ev(SERVER_INFO, i / 2, node="redis-1", up=True, role="primary")
               for i in range(1, int(samples_until * 2) + 1)]
    return [ev(WORKER, 0.5, name="observer", pid=1, action="start"), *samples,
            *steady("get", 1.0, 13.0), fault(4.0, 8.0), ev(RUN_END, 13.0)]


def test_a_cycle_the_observer_did_not_see_is_unknown_not_unpromoted() -> None:
    """Seen in CI (the Chaos Toolkit round trip): the observer was killed and lost its records after 1 s;
    the run said 'no node was promoted' while Sentinel had promoted one."""
    r = run_check("failover_time", history(*_observer_run(1.0)), {}, {"max_failover_s": 5})
    assert r.verdict == "unknown" and r.metrics["unobserved_cycles"] == 1
    assert "unknown whether a node was promoted: the observer's records stop 1.0 s into the run" in r.explanation
    result = analyze(history(*_observer_run(1.0)), {"checks": ["failover_time"]})
    assert result["verdict"] == "unknown"
    assert any("observer's records stop 1.0 s into the run" in p for p in result["run_problems"])
    # the same run observed to its end: no promotion is a finding (violated), and no run problem
    seen = run_check("failover_time", history(*_observer_run(13.0)), {}, {"max_failover_s": 5})
    assert seen.verdict == "violated" and "no node was promoted" in seen.explanation
    assert analyze(history(*_observer_run(13.0)), {"checks": ["failover_time"]})["run_problems"] == []


def _polled(*items: tuple[float, str, str]) -> list:
    return [ev(TOPOLOGY, t, source=node, event="role", node=node, role=role, resolution_s=0.1)
            for t, node, role in items]


def test_two_primaries_at_once_are_measured_per_cycle() -> None:
    """The local catalogue in CI (empty-primary-restart-slow): redis-3 promoted, a second failover
    promoted redis-2, and redis-3 kept answering as a primary until Sentinel converted it 11 s later;
    2,213 acknowledged writes were lost. The restarted old primary was also a primary for 0.1 s."""
    h = history(_polled((0.5, "redis-1", "primary"), (0.5, "redis-2", "replica"), (0.5, "redis-3", "replica"),
                        (3.7, "redis-1", "down"), (5.0, "redis-3", "primary"), (6.7, "redis-1", "primary"),
                        (6.8, "redis-1", "replica"), (7.2, "redis-2", "primary"), (18.23, "redis-3", "replica")),
                fault(3.64, 7.62), fault(18.4, 21.5))
    r = run_check("failover_time", h, {}, {})
    first, second = r.metrics["failovers"]
    assert [(round(x["start_s"], 2), round(x["duration_s"], 2), x["nodes"]) for x in first["two_primaries"]] == [
        (3.06, 0.1, ["redis-1", "redis-3"]), (3.56, 11.03, ["redis-2", "redis-3"])]
    assert second["two_primaries"] == [] and abs(r.metrics["two_primaries_s"] - 11.03) < 1e-9
    assert "redis-2 and redis-3 answered as primaries at once for 11.0 s" in r.explanation


def test_a_cluster_counts_a_second_primary_beyond_its_usual_three() -> None:
    three = [(0.5, f"redis-{i}", "primary") for i in (1, 2, 3)] + [(0.5, f"redis-{i}", "replica") for i in (4, 5, 6)]
    clean = history(_polled(*three, (5.1, "redis-1", "down"), (7.0, "redis-4", "primary"),
                            (12.0, "redis-1", "replica")), fault(5.0, 12.0))
    assert run_check("failover_time", clean, {}, {}).metrics["two_primaries_s"] == 0.0
    back = history(_polled(*three, (5.1, "redis-1", "down"), (7.0, "redis-4", "primary"),
                           (12.0, "redis-1", "primary"), (12.5, "redis-1", "replica")), fault(5.0, 12.0))
    spans = run_check("failover_time", back, {}, {}).metrics["failovers"][0]["two_primaries"]
    assert [(round(x["duration_s"], 2), len(x["nodes"])) for x in spans] == [(0.5, 4)]
