"""Hostile and malformed input: never a traceback, always one line and exit 2, nothing injected (issue 11).

The CLI sweep runs ``redislab.cli.main`` in this process (about 150 invocations; a
subprocess each would take minutes) with a topology up, and then checks that no
fault, toxic, partition rule or run directory appeared. The grammars of fault
targets, partition sides and parameters are fuzzed with hypothesis.
"""
from __future__ import annotations

import math
import os
import signal
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faults import kinds, netfilter
from faults.injector import active_faults, heal_all
from faults.toxiproxy_api import ToxiproxyAPI
from labcommon.errors import LabError
from tests.conftest import LabManager
from topologies import api
from topologies.spec import TOPOLOGIES, build_spec

BAD_NUMBERS = ["-1", "0", "nan", "NaN", "inf", "-inf", "1e400", "99999999999999999999999", "abc", "", "1,5",
               "0x10", "--"]
BAD_PARTITIONS = ["", " ", "|", "||", "redis-1|", "|redis-1", "redis-1|redis-1", ",|,", "redis-1,,|", "@c|redis-1",
                  "redis-1|@zz", "redis-1|redis-2|redis-3", "*", "redis-1;reboot", "redis-1 | ",
                  "\x00", "[red]x[/]", "redis-1|[/x]", "%s%s", "../../etc/passwd", "é|ß", "redis-1\n|@a"]
FAULT_TARGETS = ["", "redis-9", "redis-1@c", "redis-1@", "@a", "redis-1-bus", "toxiproxy", "REDIS-1", " redis-1",
                 "[bold]x", "redis-1\x00"]


def _cases(out: Path) -> list[list[str]]:
    o = ["--out", str(out)]
    cases: list[list[str]] = [
        ["up"], ["up", "triangle"], ["up", ""], ["up", "single;rm -rf /"], ["up", "single", "--backend", "podman"],
        ["up", "single", "--backend", ""], ["up", "single", "extra"],
        ["down", "--all=yes"], ["down", "extra"], ["status", "extra"], ["status", "--yaml"],
        ["node"], ["node", "kill"], ["node", "explode", "redis-1"], ["node", "kill", "redis-9"], ["node", "kill", ""],
        ["node", "pause", "redis-1@a"], ["node", "kill", "[/]"],
        ["env", "extra"], ["docker-daemon"], ["docker-daemon", "restart"], ["docker-daemon", ""],
        ["faults", "extra"], ["heal", "extra"], ["list", "extra"], ["no-such-command"], ["--bogus"],
        ["fault"], ["fault", "latency"], ["fault", "earthquake", "--target", "redis-1"], ["fault", "", "--target", "x"],
        ["fault", "latency", "--target", "redis-1"],
        ["fault", "latency", "--target", "redis-1", "latency_ms"], ["fault", "latency", "--target", "redis-1", "=5"],
        ["fault", "latency", "--target", "redis-1", "lag=5"],
        ["fault", "latency", "--target", "redis-1", "latency_ms=1", "latency_ms=2"],
        ["fault", "latency", "--target", "redis-1", "latency_ms=10", "direction=sideways"],
        ["fault", "memory", "--target", "redis-1", "maxmemory_mb=10", "policy=lru"],
        ["fault", "kill", "--target", "redis-1", "signal=9"],
        ["fault", "pause", "--target", "redis-1", "--i-own-this-pid"],
        ["fault", "client_pause", "--target", "pid:1"], ["fault", "client_kill", "--target", "pid:1",
                                                         "--i-own-this-pid"],
        ["fault", "client_pause", "--target", f"pid:{os.getpid()}"],
        ["fault", "client_pause", "--target", f"pid:{os.getppid()}"],
        ["fault", "client_pause", "--target", "pid:-5"], ["fault", "client_kill", "--target", "12"],
        ["run"], ["run", "no-such-experiment", *o], ["run", "", *o],
        ["run", "cache-primary-kill", "--topology", "triangle", *o],
        ["run", "cache-primary-kill", "--backend", "podman", *o],
        ["run", "cache-primary-kill", "--profile", "extreme", *o],
        ["run", "cache-primary-kill", "--out", "/proc/redislab-cannot-exist/x"],
        ["run", "cache-primary-kill", "--out", "/dev/null"], ["run", "cache-primary-kill", "--out", ""],
        ["run", "cache-primary-kill", "--workers", "2", *o],  # a scenario that runs in one generator process
        ["run", "counter-kill", "--workers", "9", *o],
        ["report", str(out / "nope")], ["report", "--out", "/proc/redislab-cannot-exist"],
        ["compare"], ["compare", str(out / "nope")], ["compare", str(out / "nope"), str(out / "nope")],
        ["compare", "", "\x00"], ["compare", "/dev/null", "/proc"],
        ["demo", "--profile", "extreme", *o], ["demo", "--backend", "podman", *o], ["demo", "--only", "nothing", *o],
        ["demo", "--only", ",", *o], ["demo", "--out", "/proc/redislab-cannot-exist"],
    ]
    for value in BAD_NUMBERS:
        if value != "0":  # 0 ms of latency is a valid (if pointless) toxic
            cases.append(["fault", "latency", "--target", "redis-1", f"latency_ms={value}"])
        cases += [["up", "single", "--timeout", value],
                  ["fault", "bandwidth", "--target", "redis-1", f"rate={value}"],
                  ["fault", "limit_data", "--target", "redis-1", f"bytes={value}"],
                  ["fault", "memory", "--target", "redis-1", f"maxmemory_mb={value}"],
                  ["fault", "latency", "--target", "redis-1", "latency_ms=10", "--duration", value],
                  ["fault", "client_pause", "--target", f"pid:{value}"],
                  ["run", "cache-primary-kill", "--duration", value, *o],
                  ["run", "cache-primary-kill", "--rate", value, *o],
                  ["run", "cache-primary-kill", "--cycles", value, *o],
                  ["run", "cache-primary-kill", "--repeat", value, *o],
                  ["run", "counter-kill", "--workers", value, *o],
                  ["demo", "--repeat", value, *o], ["demo", "--workers", value, *o]]
        if value not in ("-1", "0", "99999999999999999999999"):
            cases.append(["run", "cache-primary-kill", "--seed", value, *o])
    for spec in BAD_PARTITIONS:
        cases.append(["fault", "partition", "--target", spec])
    for target in FAULT_TARGETS:
        cases += [["fault", "latency", "--target", target, "latency_ms=5"], ["fault", "kill", "--target", target],
                  ["fault", "down", "--target", target], ["fault", "memory", "--target", target, "maxmemory_mb=5"]]
    return cases


def invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``redislab ARGS`` in this process: (exit status, stdout, stderr). Any exception that escapes
    ``main`` (what a user would see as a traceback) fails the test."""
    from redislab import cli
    saved_argv, saved_term = sys.argv, signal.getsignal(signal.SIGTERM)
    sys.argv = ["redislab", *args]
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = saved_argv
        signal.signal(signal.SIGTERM, saved_term)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.integration
def test_every_command_refuses_malformed_values_with_one_line_and_injects_nothing(
        lab: LabManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topo = lab("single", "local")
    out = tmp_path / "results"
    out.mkdir()
    failures = []
    try:
        for args in _cases(out):
            code, stdout, stderr = invoke(args, capsys)
            lines = [line for line in stderr.splitlines() if line.strip()]
            if code != 2 or len(lines) != 1 or not lines[0].startswith("error:") or "Traceback" in stderr:
                failures.append(f"{args!r}: exit {code}, stderr {stderr!r}, stdout {stdout[:200]!r}")
    finally:
        leftovers = active_faults()
        if leftovers:  # a case that was wrongly accepted injected something: undo it for the next tests
            heal_all(topo)
    assert not failures, "\n".join(failures)
    assert leftovers == []
    # nothing injected, nothing started, nothing written
    tox = ToxiproxyAPI()
    assert not any(tox.toxics().values()) and tox.disabled() == []
    if os.geteuid() == 0:
        assert netfilter.Netfilter().rule_count() == 0
    assert active_faults() == []
    assert all(topo.backend.node_state(n.name) == "running" for n in topo.spec.nodes)
    current = api.current()
    assert current is not None and (current.name, current.backend.name) == ("single", "local")
    assert list(out.iterdir()) == []


# -- the grammars, fuzzed -----------------------------------------------------------------------
def _topo(name: str) -> api.Topology:
    """A Topology for validation only: the grammars read the spec, never the backend."""
    return api.Topology(build_spec(name), None, "pw")  # type: ignore[arg-type]  # clients only: no backend


TOPOS = {name: _topo(name) for name in TOPOLOGIES}
MEMBERS = sorted({m for t in TOPOS.values() for m in netfilter.members(t.spec)} | {"@c", "@", "redis-9", ""})
member = st.one_of(st.sampled_from(MEMBERS), st.text(max_size=8))
side = st.lists(member, max_size=5).map(lambda ms: ",".join(ms))
spaced = st.sampled_from(["", " ", "  ", "\t"])
partition_spec = st.one_of(
    st.text(max_size=40),
    st.tuples(side, spaced, st.sampled_from(["|", "||", ""]), spaced, side).map(lambda t: "".join(t)),
)
proxies = sorted({p.name for t in TOPOS.values() for p in t.spec.proxies()})
target = st.one_of(st.text(max_size=30), st.sampled_from(proxies),
                   st.tuples(st.sampled_from(proxies), st.sampled_from(["@a", "@b", "@c", "-bus", "@", "x"]))
                   .map("".join),
                   st.integers(-10, 2**70).map(lambda n: f"pid:{n}"), partition_spec)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(topology=st.sampled_from(TOPOLOGIES), spec=partition_spec)
def test_partition_grammar_parses_or_refuses_with_a_lab_error(topology: str, spec: str) -> None:
    topo = TOPOS[topology]
    try:
        fault = kinds.make("partition", spec)
        fault.validate(topo)
    except LabError as exc:
        assert "\n" not in exc.line()  # one line: the input is quoted with repr
        return
    assert isinstance(fault, kinds.Partition)
    a, b = fault.sides(topo)
    known = netfilter.members(topo.spec)
    assert a and b and not set(a) & set(b) and set(a) | set(b) <= set(known)
    rules = netfilter.partition_rules(topo.spec, netfilter.resolve(topo.spec, a), netfilter.resolve(topo.spec, b))
    assert all(isinstance(arg, str) and arg for rule in rules for arg in rule)


@FUZZ
@given(topology=st.sampled_from(TOPOLOGIES), kind=st.sampled_from(sorted(kinds.FAULTS)), target=target)
def test_fault_targets_parse_or_refuse_with_a_lab_error_and_signal_nothing(topology: str, kind: str,
                                                                           target: str) -> None:
    topo = TOPOS[topology]
    try:
        fault = kinds.make(kind, target, **_valid_params(kind))
        fault.validate(topo)
    except LabError as exc:
        assert "\n" not in exc.line()
        return
    if isinstance(fault, kinds.ClientPause):
        pytest.fail(f"{kind} accepted {target!r}: no client is registered in this test")
    elif isinstance(fault, kinds.ProxyFault):
        assert target in [p.name for p in topo.spec.proxies()]
    elif isinstance(fault, kinds.Restart):  # one node, a list of them, or all
        assert fault.nodes(topo) and set(fault.nodes(topo)) <= {n.name for n in topo.spec.redis_nodes}
    elif not isinstance(fault, kinds.Partition):
        assert target in [n.name for n in topo.spec.nodes]


value_text = st.one_of(st.text(max_size=12), st.sampled_from(BAD_NUMBERS),
                      st.floats(allow_nan=True, allow_infinity=True).map(repr),
                      st.integers(-(2**70), 2**70).map(str))


@FUZZ
@given(kind=st.sampled_from(sorted(kinds.FAULTS)), data=st.data())
def test_fault_parameters_are_finite_and_in_range_or_refused(kind: str, data: st.DataObject) -> None:
    names = [p.name for p in kinds.FAULTS[kind].params]
    key = st.one_of(st.sampled_from(names), st.text(max_size=12)) if names else st.text(max_size=12)
    params = data.draw(st.dictionaries(key, value_text, max_size=4))
    try:
        fault = kinds.make(kind, "redis-1", **params)
    except LabError:
        return
    for p in fault.params:
        value = fault.values[p.name]
        if p.choices:
            assert value in p.choices
        elif p.low is not None:
            assert p.high is not None
            assert isinstance(value, (int, float)) and math.isfinite(value) and p.low <= value <= p.high


def _valid_params(kind: str) -> dict[str, str]:
    """The required parameters of ``kind`` with valid values (so the target is what is fuzzed)."""
    return {p.name: str(p.low if p.low is not None else p.choices[0] if p.choices else "0")
            for p in kinds.FAULTS[kind].params if p.default is None}
