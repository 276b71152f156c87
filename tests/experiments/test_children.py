"""The child-process harness (experiments.children) that the queue consumers and the lock's
slow holder run on: start with readiness, a request and its reply, SIGTERM, the run's
death, the child's history merged on the run's clock. No Redis: a child of the tests' own."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from experiments.children import Children
from experiments.history import HistoryWriter, read_history
from labcommon.poll import wait_until

CHILD = "tests.experiments.harness_child"


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDISLAB_HOME", str(tmp_path / "home"))  # the harness registers its children there


def test_a_child_answers_requests_records_on_the_runs_clock_and_stops_on_sigterm(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "history.jsonl") as writer:
        children = Children(tmp_path, writer)
        try:
            child = children.start("echo", CHILD, {"tag": "x"})  # returns once it is ready
            before = writer.clock()
            assert child.request(10) == {"n": 1, "tag": "x"}
            assert child.request(10) == {"n": 2, "tag": "x"}
            after = writer.clock()
        finally:
            children.stop_all()
        assert child.proc.returncode == 0  # SIGTERM set its stop: it returned from serving
        assert child.request(10) is None  # no reply from a child that is gone (and no 10 s wait: it is gone)
        children.merge_histories(lambda t: "baseline")
    history = read_history(tmp_path / "history.jsonl")
    asked = [o for o in history.ops if o.op == "asked"]
    assert [o.args["n"] for o in asked] == [1, 2]
    assert all(before <= o.start <= after and o.phase == "baseline" for o in asked)  # the run's clock
    assert [e.fields["action"] for e in history.events_of("worker")] == ["start", "exit"]
    assert not (tmp_path / "echo.jsonl").exists()  # merged, then removed


def test_a_hung_child_keeps_its_records_and_leaves_its_stacks(tmp_path: Path) -> None:
    """A child that does not stop when asked is aborted (SIGABRT: faulthandler writes every thread's
    stack into its log) and what it recorded before is in the run's history. (The observer once hung
    like this: it was killed, and every record after its last explicit flush was lost with its file
    buffer, so its run said no node was promoted while one was.)"""
    with HistoryWriter(tmp_path / "history.jsonl") as writer:
        children = Children(tmp_path, writer)
        try:
            child = children.start("deaf", CHILD, {"deaf": True})
            assert child.request(10) == {"n": 1, "tag": None}
        finally:
            children.stop_all(timeout_s=1.0)
        assert child.proc.returncode == -signal.SIGABRT
        children.merge_histories(lambda t: "baseline")
    history = read_history(tmp_path / "history.jsonl")
    assert [o.args["n"] for o in history.ops if o.op == "asked"] == [1]  # written before it hung: kept
    exit_event = history.events_of("worker")[-1]
    assert exit_event.fields["hung"] is True and exit_event.fields["log"] == "deaf.log"
    log = (tmp_path / "deaf.log").read_text()
    assert "Fatal Python error: Aborted" in log and "(most recent call first)" in log, log[-2000:]


def test_a_child_whose_run_is_gone_stops_by_itself(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c",
         "import os, sys\n"
         "from pathlib import Path\n"
         "from experiments.children import Children\n"
         "from experiments.history import HistoryWriter\n"
         "d = Path(sys.argv[1])\n"
         "print(Children(d, HistoryWriter(d / 'run.jsonl')).start('echo', sys.argv[2], {}).pid, flush=True)\n"
         "os._exit(0)  # the run dies without stopping its child\n",
         str(tmp_path), CHILD], capture_output=True, text=True, timeout=60, check=True)
    child = psutil.Process(int(run.stdout))

    def gone() -> bool:
        try:
            return child.status() == psutil.STATUS_ZOMBIE  # exited; whoever adopted it may reap it late
        except psutil.NoSuchProcess:
            return True

    try:
        wait_until(gone, 10, "the orphaned child to stop")
    finally:
        if not gone():
            child.kill()
    assert "Traceback" not in (tmp_path / "echo.log").read_text()
