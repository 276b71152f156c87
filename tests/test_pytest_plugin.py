"""The redislab pytest plugin.

Unit: marker, options and parametrization (pytester, nothing started), targets and the
recorder on fixed inputs. Integration: faults healed on leaving their block and at
teardown, a session that never touches a topology it did not start.
"""
from __future__ import annotations

import asyncio
import types
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from experiments.checks import UnknownCheckError
from faults.events import FAULT_HEAL, FAULT_INJECT, EventLog
from faults.injector import active_faults
from labcommon.errors import LabError
from redislab import pytest_plugin
from redislab.testing import LabSession, Recorder, RedisLab, targets
from tests.conftest import LabManager
from topologies import api
from topologies.home import lab_home
from topologies.spec import TOPOLOGIES, build_spec

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[1] / "README.md"

LAB_TESTS = """
import pytest

def test_plain(redis_lab):
    pass

@pytest.mark.redislab(backend="docker")
def test_pinned(redis_lab):
    pass

def test_without_lab():
    pass
"""


def collected(result: pytest.RunResult) -> set[str]:
    return {line.split("::", 1)[1] for line in result.outlines if "::" in line}


# -- marker and options (nothing is started: collection only) ----------------------------------
def test_the_marker_is_registered_so_strict_markers_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LAB_TESTS)
    result = pytester.runpytest("--collect-only", "-q", "--strict-markers", "--redislab-backend", "local")
    assert result.ret == pytest.ExitCode.OK, result.outlines
    assert collected(result) == {"test_plain[single-local]", "test_pinned[single-docker]", "test_without_lab"}


def test_lists_run_each_test_on_each_topology_and_backend_and_the_marker_overrides(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LAB_TESTS)
    result = pytester.runpytest("--collect-only", "-q", "--redislab-topology", "single,sentinel",
                                "--redislab-backend", "local,docker")
    assert collected(result) == {
        "test_plain[single-local]", "test_plain[single-docker]", "test_plain[sentinel-local]",
        "test_plain[sentinel-docker]", "test_pinned[single-docker]", "test_pinned[sentinel-docker]",
        "test_without_lab"}


def test_the_ini_file_sets_the_defaults(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nredislab_topology = cluster\nredislab_backend = local\n")
    pytester.makepyfile(LAB_TESTS)
    result = pytester.runpytest("--collect-only", "-q")
    assert "test_plain[cluster-local]" in collected(result)


def test_tests_using_redis_lab_carry_the_marker_so_they_can_be_deselected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LAB_TESTS)
    result = pytester.runpytest("-m", "not redislab", "-q")
    result.assert_outcomes(passed=1, deselected=2)


@pytest.mark.parametrize("args, line", [
    (["--redislab-topology", "triangle"],
     "*--redislab-topology: unknown topology 'triangle'; accepted: single, sentinel, cluster*"),
    (["--redislab-backend", "podman"], "*--redislab-backend: unknown backend 'podman'; accepted: auto, docker, local*"),
    (["--redislab-backend", ","], "*--redislab-backend: no backend given; accepted: auto, docker, local*"),
])
def test_an_unknown_option_value_is_a_one_line_usage_error(pytester: pytest.Pytester, args: list[str],
                                                           line: str) -> None:
    pytester.makepyfile(LAB_TESTS)
    result = pytester.runpytest("--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize("marker, line", [
    ('topology="triangle"', "*unknown topology 'triangle'; accepted: single, sentinel, cluster*"),
    ('"sentinel"', "*takes only keyword arguments topology and backend*"),
    ('topology="single", nodes=3', "*takes only keyword arguments topology and backend*"),
])
def test_a_bad_marker_fails_its_test_module_in_one_line(pytester: pytest.Pytester, marker: str, line: str) -> None:
    pytester.makepyfile(f"import pytest\n@pytest.mark.redislab({marker})\ndef test_x(redis_lab):\n    pass\n")
    result = pytester.runpytest("--collect-only")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error
    result.stdout.fnmatch_lines([line])
    assert "Traceback" not in result.stdout.str()


def test_the_plugins_names_are_the_labs() -> None:
    assert pytest_plugin.TOPOLOGIES == TOPOLOGIES
    assert pytest_plugin.BACKENDS == api.BACKENDS


# -- targets ------------------------------------------------------------------------------------
@pytest.fixture
def sentinel_topo(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A sentinel spec whose current primary is redis-2 (no servers: ``primary_of`` is replaced)."""
    asked: list[str] = []

    def primary_of(topo: object, key: str) -> str:
        asked.append(key)
        return "redis-2"

    monkeypatch.setattr(targets, "primary_of", primary_of)
    return types.SimpleNamespace(spec=build_spec("sentinel"), asked=asked)


@pytest.mark.parametrize("target, resolved", [
    ("primary", "redis-2"), ("primary@a", "redis-2@a"), ("primary-bus", "redis-2-bus"),
    ("primary,@a|redis-1,redis-3", "redis-2,@a|redis-1,redis-3"), ("redis-1", "redis-1"),
    ("primaryx", "primaryx"), ("x-primary", "x-primary"),
])
def test_primary_stands_for_the_current_primary_anywhere_a_node_name_may(
        sentinel_topo: types.SimpleNamespace, target: str, resolved: str) -> None:
    assert targets.resolve(sentinel_topo, target) == resolved  # type: ignore[arg-type]  # a SimpleNamespace stand-in for the Topology


def test_the_primary_is_only_looked_up_when_named(sentinel_topo: types.SimpleNamespace) -> None:
    targets.resolve(sentinel_topo, "redis-1@b")  # type: ignore[arg-type]  # a SimpleNamespace stand-in for the Topology
    assert sentinel_topo.asked == []
    targets.resolve(sentinel_topo, "primary", key="user:42")  # type: ignore[arg-type]  # a SimpleNamespace stand-in for the Topology
    assert sentinel_topo.asked == ["user:42"]


def test_a_partition_puts_the_members_on_one_side_and_everyone_else_on_the_other(
        sentinel_topo: types.SimpleNamespace) -> None:
    topo = sentinel_topo
    assert targets.partition_target(topo, ["primary"]) == "redis-2"  # type: ignore[arg-type]  # a SimpleNamespace stand-in for the Topology
    left, right = targets.partition_target(topo, ["primary", "@a"]).split("|")  # type: ignore[arg-type]  # a SimpleNamespace stand-in for the Topology
    assert left.split(",") == ["redis-2", "@a"]
    assert set(right.split(",")) == {"redis-1", "redis-3", "sentinel-1", "sentinel-2", "sentinel-3", "@b", "@clients"}
    assert targets.partition_target(topo, ["@a"]).startswith("@a|redis-1,")  # type: ignore[arg-type]  # a SimpleNamespace stand-in for the Topology
    assert targets.partition_target(topo, ["primary|@b"]) == "redis-2|@b"  # type: ignore[arg-type]  # a SimpleNamespace stand-in for the Topology


# -- the recorder -------------------------------------------------------------------------------
def _boom(exc: BaseException) -> object:
    raise exc


def test_recorded_operations_are_classified_as_the_experiments_classify_theirs(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "h.jsonl")
    assert rec.call("add", {"value": 1}, lambda: 1).outcome == "ok"
    assert rec.call("add", {"value": 2}, lambda: _boom(redis.TimeoutError("slow"))).outcome == "unknown"
    assert rec.call("add", {"value": 3}, lambda: _boom(ConnectionRefusedError())).outcome == "fail"
    assert rec.call("get", {}, lambda: _boom(redis.TimeoutError("slow")), read=True).outcome == "fail"

    async def value() -> str:
        return "v"

    async def refused() -> str:
        raise redis.ConnectionError("Error connecting to 127.0.0.1:7001")

    assert asyncio.run(rec.attempt("get", {}, value(), read=True)).value == "v"
    assert asyncio.run(rec.attempt("add", {"value": 4}, refused())).outcome == "fail"
    ops = rec.history().ops
    assert [(o.op, o.outcome, o.error) for o in ops] == [
        ("add", "ok", None), ("add", "unknown", "TimeoutError"), ("add", "fail", "ConnectionRefusedError"),
        ("get", "fail", "TimeoutError"), ("get", "ok", None), ("add", "fail", "ConnectionError")]
    assert all(o.kind == "workload" and o.start <= o.end for o in ops)


def test_faults_go_into_the_same_history_so_window_checks_work(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "h.jsonl")
    events = EventLog(rec)
    rec.call("add", {"value": "a"}, lambda: 1)
    events.record(FAULT_INJECT, "kill", "redis-1", {})
    rec.call("add", {"value": "b"}, lambda: 1)
    events.record(FAULT_HEAL, "kill", "redis-1", {})
    history = rec.history()
    (cycle,) = history.cycles()
    assert cycle.fault.label == "kill redis-1" and cycle.fault.end is not None
    assert [o.args["value"] for o in history.during(cycle)] == ["b"]
    lost = rec.check("lost_writes", final_state={"set": ["a"]})
    assert lost.verdict == "violated" and lost.metrics["lost_in_windows"] == 1, lost.explanation
    assert rec.check("lost_writes", final_state={"set": ["a", "b"]}).verdict == "held"
    with pytest.raises(UnknownCheckError, match=r"known checks: .*lost_writes"):
        rec.check("lost_write")


# -- on real topologies -------------------------------------------------------------------------
def _serves_fast(lab: RedisLab) -> bool:
    with lab.client(socket_timeout=0.25, retry=Retry(NoBackoff(), 0)) as r:
        return bool(r.ping())


@pytest.mark.integration
def test_a_fault_is_healed_when_its_block_exits_and_an_open_one_at_teardown(lab: LabManager, backend: str,
                                                                            tmp_path: Path) -> None:
    rl = RedisLab(lab("single", backend), lab_home(), lambda: tmp_path)
    rec = rl.recorder()
    with pytest.raises(RuntimeError, match="body"), rl.fault("latency", target="primary", latency_ms=300) as slow:
        assert slow.target == "redis-1"
        with pytest.raises(redis.TimeoutError):
            _serves_fast(rl)
        raise RuntimeError("the body failed")
    assert slow.healed and active_faults() == []  # healed on leaving the block, before any teardown
    assert _serves_fast(rl)
    paused = rl.pause()  # no block: open until the teardown
    assert [n.state for n in rl.nodes() if n.name == "redis-1"] == ["paused"]
    rl.close()  # what the fixture's teardown does
    assert paused.healed and active_faults() == []
    assert _serves_fast(rl)
    assert [w.label for w in rec.history().fault_windows()] == ["latency redis-1", "pause redis-1"]


@pytest.mark.integration
def test_a_session_reuses_a_healthy_topology_it_did_not_start_and_never_replaces_it(fresh_lab: LabManager,
                                                                                    backend: str) -> None:
    if backend == "docker":
        fresh_lab.request.getfixturevalue("docker_daemon").ensure()
    theirs = api.up("single", backend=backend)  # someone else's (`redislab up single`)
    session = LabSession()
    assert session.topology("single", backend).name == "single" and not session.owns(theirs)
    with pytest.raises(LabError, match=r"topology single \(\w+\) is up and this test session did not start it"):
        session.topology("sentinel", backend)
    session.close()
    current = api.current()
    assert current is not None and current.name == "single"  # still up: not the session's


def readme_example() -> str:
    """The complete test file of the README's plugin section."""
    block = README.read_text().split("<!-- plugin-example:begin -->")[1].split("<!-- plugin-example:end -->")[0]
    return block.split("```python\n", 1)[1].rsplit("```", 1)[0]


def test_the_readme_has_a_complete_plugin_example() -> None:
    code = readme_example()
    compile(code, "test_orders.py", "exec")
    assert "pytest.mark.redislab(" in code and "redis_lab.fault(" in code and "rec.check(" in code


@pytest.mark.integration
def test_the_readme_example_passes_as_it_is(lab: LabManager, backend: str, request: pytest.FixtureRequest,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    lab("sentinel", backend)  # up once: the example's own session reuses it and leaves it up
    pytester: pytest.Pytester = request.getfixturevalue("pytester")  # after: it moves $HOME (Compose's plugin)
    monkeypatch.setenv("REDISLAB_HOME", str(lab_home()))  # pytester moves $HOME: keep the same lab
    pytester.makepyfile(test_orders=readme_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--redislab-backend", backend, timeout=240)
    result.assert_outcomes(passed=2)
    assert active_faults() == []


TERMINATED = """
import os, signal
import pytest

pytestmark = pytest.mark.redislab(topology="sentinel", backend="{backend}")


def test_terminated_inside_a_fault(redis_lab):
    redis_lab.fault("latency", target="primary", latency_ms=300)  # no block: only the teardown heals it
    os.kill(os.getpid(), signal.SIGTERM)  # a cancelled CI job
    pytest.fail("SIGTERM did not interrupt the test")
"""


@pytest.mark.integration
def test_sigterm_interrupts_the_test_and_its_teardown_heals(lab: LabManager, backend: str,
                                                            request: pytest.FixtureRequest,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    rl = RedisLab(lab("sentinel", backend), lab_home(), lambda: Path("/nonexistent"))
    pytester: pytest.Pytester = request.getfixturevalue("pytester")  # after: it moves $HOME (Compose's plugin)
    monkeypatch.setenv("REDISLAB_HOME", str(lab_home()))
    pytester.makepyfile(TERMINATED.format(backend=backend))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.outlines
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    assert "SIGTERM did not interrupt" not in result.stdout.str()
    assert active_faults() == []
    assert _serves_fast(rl)
