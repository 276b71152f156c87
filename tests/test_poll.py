"""The one poller (``labcommon.poll``): plain and asyncio flavours, timeouts, fatal errors."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from labcommon.errors import NotReadyError
from labcommon.poll import wait_until, wait_until_async


class ChildCrashed(Exception):
    pass


def _counting(answers: list[object]) -> tuple[Callable[[], object], list[int]]:
    """A probe that returns (or raises) ``answers`` in turn, then keeps returning the last one."""
    calls = [0]

    def probe() -> object:
        calls[0] += 1
        answer = answers[min(calls[0], len(answers)) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return answer
    return probe, calls


def _async(probe: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def run() -> object:
        return probe()
    return run


def _wait(flavour: str, probe: Callable[[], object], timeout_s: float, details: Callable[[], str] = lambda: "",
          fatal: tuple[type[BaseException], ...] = ()) -> object:
    if flavour == "sync":
        return wait_until(probe, timeout_s, "the thing", details, interval_s=0.001, fatal=fatal)
    return asyncio.run(wait_until_async(_async(probe), timeout_s, "the thing", details, interval_s=0.001,
                                        fatal=fatal))


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
def test_returns_the_first_truthy_answer_after_errors_and_falsy_answers(flavour: str) -> None:
    probe, calls = _counting([OSError("refused"), None, 0, "up"])
    assert _wait(flavour, probe, 30) == "up"
    assert calls[0] == 4


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
def test_a_timeout_is_one_line_quoting_the_last_answer(flavour: str) -> None:
    probe, _ = _counting([ConnectionRefusedError("nobody home")])
    with pytest.raises(NotReadyError) as raised:
        _wait(flavour, probe, 0.05, details=lambda: "log tail")
    assert raised.value.message == "the thing not ready after 0 s: ConnectionRefusedError: nobody home"
    assert raised.value.details == "log tail"
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
def test_a_fatal_error_ends_the_wait_at_once(flavour: str) -> None:
    probe, calls = _counting([None, ChildCrashed("worker-1 exited")])
    with pytest.raises(ChildCrashed):
        _wait(flavour, probe, 30, fatal=(ChildCrashed,))
    assert calls[0] == 2


def test_the_async_poller_lets_other_tasks_run_between_probes() -> None:
    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await wait_until_async(_async(lambda: ticks >= 3), 30, "three ticks", interval_s=0.001)
        task.cancel()
        return ticks

    assert asyncio.run(main()) >= 3
