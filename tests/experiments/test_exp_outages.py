"""The outage checks on small hand-written histories, the outage faults' parameters, and the
catalogue's wiring of the new experiments (no Redis)."""
from __future__ import annotations

from pathlib import Path

import pytest

from experiments import answer, catalogue, registry
from experiments.checks import REGISTRY, run_check
from experiments.history import ROLE, TOPOLOGY, Op
from faults import kinds, maintenance
from labcommon.errors import LabError
from tests.experiments.exp_helpers import ev, fault, history, op

OUTAGE_CLAIMS = {"persistence_loss", "dataset_after_restart", "expectation", "failover_expected",
                 "replica_staleness", "cache_vs_database"}


def _adds(spec: list[tuple[str, float]]) -> list:
    return [op("add", {"value": v}, start=t - 0.001, end=t) for v, t in spec]


# -- persistence_loss ---------------------------------------------------------------------------
def test_persistence_none_expects_every_write_before_the_crash_lost() -> None:
    h = history(*_adds([("a", 1.0), ("b", 2.0), ("c", 6.0)]), fault(3.0, 4.0))
    lost_all = run_check("persistence_loss", h, {"set": ["c"]}, {"mode": "none"})
    assert lost_all.verdict == "held" and lost_all.metrics["cycles"][0] == {
        "cycle": 1, "acked": 2, "lost": 2, "oldest_lost_s": 2.0}
    survived = run_check("persistence_loss", h, {"set": ["a", "c"]}, {"mode": "none"})
    assert survived.verdict == "violated" and "survived a crash without persistence" in survived.explanation


def test_persistence_everysec_bounds_the_age_of_lost_writes() -> None:
    h = history(*_adds([("old", 0.5), ("recent", 2.6), ("after", 6.0)]), fault(3.0, 4.0))
    recent_only = run_check("persistence_loss", h, {"set": ["old", "after"]}, {"mode": "aof-everysec", "bound_s": 2})
    assert recent_only.verdict == "held" and "The lab reproduced it." in recent_only.explanation
    too_old = run_check("persistence_loss", h, {"set": ["after"]}, {"mode": "aof-everysec", "bound_s": 2})
    assert too_old.verdict == "violated" and "(bound 2.0 s)" in too_old.explanation


def test_persistence_always_allows_no_loss_and_reports_the_restart_time() -> None:
    h = history(*_adds([("a", 1.0), ("b", 2.0)]), fault(3.0, 4.0), ev("restart_ready", 4.5, cycle=1, ready_s=0.42))
    held = run_check("persistence_loss", h, {"set": ["a", "b"]}, {"mode": "aof-always"})
    assert held.verdict == "held" and held.metrics["restart_ready_s"] == [0.42]
    assert run_check("persistence_loss", h, {"set": ["a"]}, {"mode": "aof-always"}).verdict == "violated"
    assert run_check("persistence_loss", h, {}, {"mode": "aof-always"}).verdict == "unknown"


# -- dataset_after_restart ------------------------------------------------------------------------
def _sizes(before: dict[str, int], after: dict[str, int]) -> list:
    return [ev("dataset", 2.9, cycle=1, when="before", sizes=before), ev("dataset", 5.0, cycle=1, when="after",
                                                                         sizes=after)]


def test_dataset_wiped_on_every_node_matches_the_published_warning() -> None:
    params = {"expect": "lost", "published": "the replicas wipe their copy"}
    wiped = history(fault(3.0, 4.0), _sizes({"redis-1": 5000, "redis-2": 5000}, {"redis-1": 1, "redis-2": 1}))
    r = run_check("dataset_after_restart", wiped, {}, params)
    assert r.verdict == "held" and "redis-2 5000 -> 1 keys" in r.explanation
    kept = history(fault(3.0, 4.0), _sizes({"redis-1": 5000, "redis-2": 5000}, {"redis-1": 1, "redis-2": 5001}))
    assert run_check("dataset_after_restart", kept, {}, params).verdict == "violated"
    assert run_check("dataset_after_restart", kept, {}, {**params, "expect": "kept"}).verdict == "violated"
    nothing_to_lose = history(fault(3.0, 4.0), _sizes({"redis-1": 3}, {"redis-1": 3}))
    assert run_check("dataset_after_restart", nothing_to_lose, {}, params).verdict == "unknown"


# -- failover_expected ------------------------------------------------------------------------------
def test_failover_expected_reads_promotions_and_how_long_requests_failed() -> None:
    ops = [op("add", {"value": i}, start=t, end=t + 0.01, outcome="fail" if 3.0 <= t < 6.0 else "ok")
           for i, t in enumerate([1.0, 2.0, 3.1, 4.0, 5.0, 6.5, 7.0])]
    h = history(*ops, fault(3.0, 6.0), ev(ROLE, 0.5, node="redis-1", role="primary"))
    none = run_check("failover_expected", h, {}, {"expect": False, "published": "no failover without quorum"})
    assert none.verdict == "held"
    assert none.metrics["cycles"][0]["outage_s"] == pytest.approx(3.51)
    promoted = history(*ops, fault(3.0, 6.0), ev(TOPOLOGY, 4.0, source="sentinel-1", event="+switch-master",
                                                 detail="lab 127.0.0.1 7101 127.0.0.1 7102"))
    assert run_check("failover_expected", promoted, {}, {"expect": False, "published": "x"}).verdict == "violated"
    assert run_check("failover_expected", promoted, {}, {"expect": True, "published": "x"}).verdict == "held"


# -- expectation ------------------------------------------------------------------------------------
def test_expectation_is_another_checks_verdict_as_published() -> None:
    h = history(*_adds([("a", 1.0), ("b", 2.0)]), fault(3.0, 4.0))
    params = {"check": "lost_writes", "expect": "violated", "published": "writes are lost", "source": "issue 6062"}
    lost = run_check("expectation", h, {"set": ["a"]}, params)
    assert lost.verdict == "held" and lost.explanation.startswith("Published (issue 6062): writes are lost.")
    none_lost = run_check("expectation", h, {"set": ["a", "b"]}, params)
    assert none_lost.verdict == "violated" and "did NOT reproduce" in none_lost.explanation
    assert run_check("expectation", h, {}, params).verdict == "unknown"  # no final read: nothing is known


# -- replica_staleness ------------------------------------------------------------------------------
def _read(member: str, score: float, t: float, stale: bool, source: str = "replica") -> Op:
    return op("replica_read", {"member": member}, start=t, end=t + 0.001,
              value={"score": score, "source": source, "stale": stale})


def test_replica_staleness_counts_bounds_and_compares_with_the_patterns_flag() -> None:
    incs = [op("zincrby", {"member": "p", "amount": 1}, start=t - 0.001, end=t) for t in (1.0, 2.0, 3.0)]
    reads = [_read("p", 3, 3.5, False), _read("p", 1, 3.2, True), _read("p", 0, 3.4, False),
             _read("p", 0, 3.6, False, source="primary")]
    h = history(*incs, *reads)
    r = run_check("replica_staleness", h, {}, {"max_stale_s": 1.0})
    assert r.metrics["replica_reads"] == 3 and r.metrics["stale"] == 2
    assert r.metrics["flagged"] == 1 and r.metrics["unflagged"] == 1
    assert r.metrics["max_stale_s"] == pytest.approx(2.4)  # missed the increment acknowledged at 1.0
    assert r.verdict == "violated"
    assert run_check("replica_staleness", h, {}, {"max_stale_s": 3.0}).verdict == "held"


# -- cache_vs_database ------------------------------------------------------------------------------
def test_cache_vs_database_judges_the_prediction_from_the_links_rate() -> None:
    fast = [op("read", {"key": "k"}, start=3.1 + i / 10, end=3.102 + i / 10, value={"source": "cache"})
            for i in range(10)]
    h = history(*fast, fault(3.0, 5.0))
    params = {"value_bytes": 1024, "rate_kb_s": 1000}
    r = run_check("cache_vs_database", h, {"database_ms": {"p50": 6.0, "p99": 9.0}}, params)
    assert r.verdict == "held" and r.metrics["predicted_helps"] and r.metrics["observed_helps"]
    big = run_check("cache_vs_database", h, {"database_ms": {"p50": 6.0}}, {**params, "value_bytes": 1 << 20})
    assert big.verdict == "violated"  # 1 MiB takes ~1 s to cross: predicted useless, yet it looked fast
    assert run_check("cache_vs_database", h, {}, params).verdict == "unknown"


# -- faults: parameters, without Redis ----------------------------------------------------------------
def test_outage_faults_are_listed_with_units_and_refuse_bad_parameters() -> None:
    for kind in ("failover", "restart", "slow_command", "reshard"):
        assert kind in kinds.FAULTS
    assert {p.name: p.unit for p in kinds.FAULTS["slow_command"].params}["duration_ms"] == "ms"
    with pytest.raises(LabError, match="accepted: lua, debug_sleep, keys"):
        kinds.make("slow_command", "redis-1", how="fork-bomb")
    with pytest.raises(LabError, match="out of range"):
        kinds.make("restart", "all", pause_ms=-1)
    with pytest.raises(LabError, match="accepted: default, force, takeover"):
        kinds.make("failover", "redis-1", mode="now")
    with pytest.raises(LabError, match=r"slots=.* is not a list of slots"):
        maintenance.parse_slots("ten")
    with pytest.raises(LabError, match=r"out of range; accepted: 0..16383"):
        maintenance.parse_slots("16000-17000")
    assert maintenance.parse_slots("5, 7-9,7") == [5, 7, 8, 9]


def test_record_round_trip_keeps_what_heal_needs() -> None:
    f = kinds.make("slow_command", "redis-1", how="lua", busy_ms=300)
    f.saved["lua-time-limit"] = "5000"
    back = kinds.from_record(f.record())
    assert back.values == f.values and back.saved == {"lua-time-limit": "5000"} and not back.swept


# -- catalogue -----------------------------------------------------------------------------------------
def test_every_outage_showcase_variant_is_a_registered_experiment() -> None:
    keys = {"persistence", "empty-primary-restart", "manual-failover", "rolling-restart", "stalled-thread",
            "bandwidth", "quorum-and-replication"}
    showcases = {s.key: s for s in catalogue.SHOWCASES}
    assert keys <= set(showcases)
    for key in keys:
        for _label, exp, top in showcases[key].variants:
            e = registry.get(exp)
            assert top in (e.topology, *e.topologies)
            for spec in e.checks:
                name = spec if isinstance(spec, str) else spec["name"]
                assert name in REGISTRY
                if name in OUTAGE_CLAIMS:  # one-line answers name a violated claim in a few words
                    assert name in answer.CLAIM_LABELS
    quick = {i.section for i in catalogue.plan("quick")}
    full = {i.section for i in catalogue.plan("full")}
    assert keys <= full
    assert {"rolling-restart", "stalled-thread", "bandwidth", "quorum-and-replication"}.isdisjoint(quick)
    assert registry.get("persistence-aof-always").topology_options == {"appendonly": True}


def test_demo_only_names_the_profile_a_full_only_showcase_needs(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_hostile_input import invoke
    code, out, err = invoke(["demo", "--only", "rolling-restart", "--out", str(tmp_path)], capsys)
    assert code != 0 and out == ""
    assert "full profile only" in err and "--profile full --only rolling-restart" in err and len(
        err.strip().splitlines()) == 1


def test_the_one_line_answer_says_whether_the_published_expectation_was_reproduced() -> None:
    def row(label: str, *verdicts: str) -> answer.Row:
        checks = [{"name": "persistence_loss", "verdict": v, "metrics": {}} for v in verdicts]
        return answer.Row("persistence", label, "persistence-none", "single",
                          results=[{"verdict": "violated", "checks": checks, "metrics": {}, "violated": []}])
    line = answer.pattern_line([row("none", "held"), row("rdb", "violated"), row("aof", "unknown"),
                                answer.Row("persistence", "plain", "x", "single",
                                           results=[{"verdict": "held", "checks": [], "metrics": {}}])])
    assert "none: " in line and "as published: reproduced" in line.split("; rdb")[0]
    assert "as published: not reproduced" in line.split("; aof")[0].split("rdb:")[1]
    assert "as published: undecided" in line.split("aof:")[1].split("; plain")[0]
    assert "as published" not in line.split("plain:")[1]


# -- the answer says whether the published expectation was reproduced ----------------------------------
def _published_row(name: str, *verdicts: str) -> answer.Row:
    checks = [{"name": name, "verdict": v, "metrics": {}, "explanation": f"Published: x. The lab: {v}."}
              for v in verdicts]
    return answer.Row("quorum-and-replication", "replica reads", "replica-read-lag", "sentinel",
                      results=[{"verdict": "held", "checks": checks, "metrics": {}, "claims": [], "violated": []}])


@pytest.mark.parametrize("name", ["replica_staleness", "cache_vs_database", "failover_expected", "expectation"])
def test_each_showcase_claim_judging_an_expectation_gives_the_row_its_sentence(name: str) -> None:
    held = answer.summary([_published_row(name, "held")], {})["rows"][0]
    assert held["published"] == "reproduced" and held["published_text"] == "Published: x. The lab: held."
    bad = answer.summary([_published_row(name, "held", "violated")], {})["rows"][0]
    assert bad["published"] == "not reproduced" and bad["published_text"].endswith("The lab: violated.")
    assert "as published: reproduced" in answer.pattern_line([_published_row(name, "held")])
    plain = answer.summary([_published_row("lost_writes", "held")], {})["rows"][0]
    assert "published" not in plain and "published_text" not in plain


def test_the_four_full_only_showcases_judge_a_published_expectation_in_every_row() -> None:
    for sc in catalogue.SHOWCASES:
        if sc.key in ("rolling-restart", "stalled-thread", "bandwidth", "quorum-and-replication"):
            for _label, exp, _top in sc.variants:
                names = {c if isinstance(c, str) else c["name"] for c in registry.get(exp).checks}
                assert names & answer.PUBLISHED_CLAIMS, exp
