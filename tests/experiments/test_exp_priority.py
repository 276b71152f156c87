"""The generator's schedule thread runs ahead of the system under test, and nothing it starts inherits that."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from experiments.priority import GENERATOR_NICE, NICE_ENV, requested_nice, schedule_priority
from labcommon.errors import LabError


def _thread_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)



def test_the_schedule_thread_is_raised_and_what_it_starts_is_not() -> None:
    before = _thread_nice()
    seen: dict[str, int] = {}
    with schedule_priority(GENERATOR_NICE) as prio:
        seen["loop"] = _thread_nice()
        t = threading.Thread(target=lambda: seen.__setitem__("thread", _thread_nice()))
        t.start()
        t.join()
        child = subprocess.run([sys.executable, "-c", "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"],
                               capture_output=True, text=True, check=True)
        seen["process"] = int(child.stdout)
    assert _thread_nice() == before
    if os.geteuid() != 0:
        assert prio.nice == before and "not permitted" in prio.reason
        return
    assert prio.nice == seen["loop"] == GENERATOR_NICE and prio.reason == ""
    assert seen["thread"] == 0 and seen["process"] == 0  # SCHED_RESET_ON_FORK: started at nice 0
    assert "nice -10" in prio.text()


def test_zero_turns_the_raise_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NICE_ENV, "0")
    with schedule_priority() as prio:
        assert _thread_nice() == 0
    assert prio.requested == 0 and prio.nice == 0


@pytest.mark.parametrize("value", ["-21", "5", "fast"])
def test_a_bad_nice_value_is_one_line(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(NICE_ENV, value)
    with pytest.raises(LabError, match="accepted: an integer from -20 to 0"):
        requested_nice()


def test_the_process_pools_threads_share_the_raise_and_what_they_start_does_not() -> None:
    """A worker thread that holds the GIL at nice 0 would stall the raised loop (priority inversion)."""
    import asyncio

    from experiments.priority import thread_pool
    from experiments.workload import run_loop

    def in_worker() -> tuple[int, int]:
        child = subprocess.run([sys.executable, "-c", "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"],
                               capture_output=True, text=True, check=True)
        return _thread_nice(), int(child.stdout)

    async def main() -> tuple[int, tuple[int, int], tuple[int, int]]:
        with schedule_priority(GENERATOR_NICE) as prio:
            default = await asyncio.to_thread(in_worker)
            pool = thread_pool(prio.nice, max_workers=1)
            try:
                own = await asyncio.get_running_loop().run_in_executor(pool, in_worker)
            finally:
                pool.shutdown()
        return prio.nice, default, own

    nice, default, own = run_loop(main())
    if os.geteuid() != 0:
        assert default[0] == own[0] == 0 and nice == 0
        return
    assert nice == GENERATOR_NICE
    assert default == own == (GENERATOR_NICE, 0)  # threads raised; the process a thread starts at nice 0
