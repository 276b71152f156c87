"""One `redislab up` / `run` / `demo` at a time: a second is refused naming the first (issue 11)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from labcommon.poll import wait_until
from tests.conftest import LabManager
from topologies import api, runlock
from topologies.home import StateFile
from topologies.processes import OwnedProcess

REDISLAB = [sys.executable, "-m", "redislab.cli"]


def test_a_stale_holder_is_ignored_and_a_process_may_nest_holds() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    me = OwnedProcess.of(os.getpid())
    assert me is not None
    for stale in ([dead.pid, 12345], [os.getpid(), me.start_ticks + 1]):  # gone; pid reused by another process
        StateFile("busy.json").write({"proc": stale, "what": "redislab run old", "since": 0})
        assert runlock.holder() is None
        with runlock.hold("redislab up single"):
            with runlock.hold("up single (local)"):  # nested: run -> api.up
                held = runlock.holder()
                assert held is not None and held["what"] == "redislab up single"
            assert runlock.holder() is not None
        assert runlock.holder() is None


def test_another_live_holder_is_named() -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom topologies import runlock\n"
                               "with runlock.hold('redislab run cache-primary-kill'):\n"
                               "    print('held', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(runlock.LabBusyError, match=f"pid {holder.pid} \\(redislab run cache-primary-kill"):
            with runlock.hold("redislab up single"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with runlock.hold("redislab up single"):  # the holder died: free again
        pass


@pytest.mark.integration
def test_up_during_a_run_is_refused_naming_the_run(fresh_lab: LabManager, tmp_path: Path) -> None:
    run = subprocess.Popen([*REDISLAB, "run", "cache-primary-kill", "--backend", "local", "--duration", "3",
                            "--out", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: api.current() is not None, 60, "the run's topology up")
        for args in (["up", "single", "--backend", "local"],
                     ["run", "cache-primary-kill", "--backend", "local", "--out", str(tmp_path)]):
            result = subprocess.run([*REDISLAB, *args], capture_output=True, text=True, timeout=60)
            assert result.returncode == 2 and "Traceback" not in result.stderr, result
            line = result.stderr.strip()
            assert "\n" not in line
            assert f"pid {run.pid} (redislab run cache-primary-kill" in line and "port" not in line
        _, err = run.communicate(timeout=180)
        assert run.returncode == 0, err
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
            run.communicate(timeout=60)
    assert runlock.holder() is None
