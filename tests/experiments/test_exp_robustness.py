"""Runs whose own machinery fails: Ctrl-C during a partition, Toxiproxy dying, a full disk.
Each heals, leaves nothing behind and says what happened instead of judging Redis."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.history import read_history
from faults.injector import active_faults
from labcommon.poll import wait_until
from tests.conftest import LabManager
from tests.procs import default_sigint
from topologies import api

pytestmark = pytest.mark.integration
REDISLAB = [sys.executable, "-m", "redislab.cli"]


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*REDISLAB, "run", *args, "--backend", "local", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


def _injected(out: Path) -> bool:
    histories = list(out.glob("*/history.jsonl"))
    return bool(histories) and '"fault_inject"' in histories[0].read_text()


def test_ctrl_c_in_a_partition_heals_first_and_skips_the_final_read(fresh_lab: LabManager, tmp_path: Path) -> None:
    proc = _start(tmp_path, "splitbrain-plain", "--duration", "60")
    try:
        wait_until(lambda: _injected(tmp_path), 90, "the partition to be injected")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    run_dir = next(tmp_path.glob("*/history.jsonl")).parent
    result = json.loads((run_dir / "result.json").read_text())
    assert result["interrupted"] is True and result["verdict"] == "unknown"
    lost = next(c for c in result["claims"] if c["name"] == "lost_writes")
    assert lost["verdict"] == "unknown" and "skipped: the run was interrupted" in lost["explanation"]
    assert active_faults() == [] and api.current() is None  # healed, and the run's topology is gone


def test_toxiproxy_dying_mid_run_makes_the_verdict_undecided_not_violated(fresh_lab: LabManager,
                                                                          tmp_path: Path) -> None:
    proc = _start(tmp_path, "counter-kill", "--topology", "single", "--cycles", "1", "--duration", "16")
    try:
        wait_until(lambda: _injected(tmp_path), 90, "the fault to be injected")
        topo = api.current()
        assert topo is not None
        topo.backend.procs["toxiproxy"].signal(signal.SIGKILL)  # type: ignore[attr-defined]  # the lab's proxy dies
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    result = json.loads(next(tmp_path.glob("*/result.json")).read_text())
    assert result["verdict"] == "unknown", result["violated"]
    assert any("Toxiproxy" in p or "toxiproxy" in p for p in result["run_problems"]), result["run_problems"]
    assert active_faults() == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 160 KiB tmpfs: room for the run's config and the start of its history, not for the rest."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_what_was_written(fresh_lab: LabManager,
                                                                            tiny_disk: Path) -> None:
    proc = subprocess.run([*REDISLAB, "run", "counter-kill", "--topology", "single", "--backend", "local",
                           "--cycles", "1", "--duration", "20", "--out", str(tiny_disk)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "could not write the history" in lines[0] and "Traceback" not in proc.stderr
    history = read_history(next(tiny_disk.glob("*/history.jsonl")))
    assert history.ops and not history.completed  # readable, and marked as cut short
    assert active_faults() == [] and api.current() is None
