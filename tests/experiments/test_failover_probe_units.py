"""The failover probe's wait for its client processes, on hand-made reports (no processes)."""
from __future__ import annotations

import queue
import threading

import pytest

from experiments import failover_probe
from labcommon.errors import LabError, NotReadyError


def test_a_client_that_reported_an_error_ends_the_wait_at_once() -> None:
    readies = {"a": threading.Event(), "b": threading.Event()}
    out: queue.Queue[dict[str, str]] = queue.Queue()
    out.put({"client": "b", "error": "ConnectionError: refused"})
    with pytest.raises(LabError, match="failed before the kill") as raised:
        failover_probe._wait_ready(readies, out, {})
    assert not isinstance(raised.value, NotReadyError)


def test_clients_that_never_write_are_named_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failover_probe, "READY_TIMEOUT_S", 0.2)
    readies = {"a": threading.Event(), "b": threading.Event()}
    readies["a"].set()
    with pytest.raises(NotReadyError) as raised:
        failover_probe._wait_ready(readies, queue.Queue(), {})
    assert "not writing: b" in raised.value.details


def test_the_wait_ends_when_every_client_writes() -> None:
    readies = {"a": threading.Event()}
    threading.Timer(0.1, readies["a"].set).start()
    failover_probe._wait_ready(readies, queue.Queue(), {})
    assert readies["a"].is_set()
