"""The two end-to-end experiments, short, on both backends: each produces a verdict,
its checks and its plot, and the numbers say what happened."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.history import read_history
from experiments.run_report import verdict_words
from experiments.runner import RunRequest, run_experiment
from faults.injector import active_faults
from labcommon.poll import wait_until
from tests.conftest import LabManager
from tests.procs import default_sigint
from topologies import api

pytestmark = pytest.mark.integration
DURATION_S = 24  # warm-up ~1.1 s, baseline ~2.3 s, then 2 cycles of fault ~4.6 s + recovery ~5.7 s


def _run(tmp_path: Path, experiment: str, backend: str, workers: int = 1) -> tuple[dict, Path]:
    run_dir = run_experiment(RunRequest(experiment, backend=backend, duration_s=DURATION_S, out=str(tmp_path),
                                        progress=False, workers=workers))
    result = json.loads((run_dir / "result.json").read_text())
    assert result["verdict"] in ("held", "violated", "unknown")
    assert (run_dir / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (run_dir / "report.md").read_text()
    assert report.startswith(f"# {experiment}: {verdict_words(result)}") and "timeline.png" in report
    assert (tmp_path / "runs.md").exists() and (tmp_path / "runs.html").exists()
    return result, run_dir


def _check(result: dict, name: str) -> dict:
    return next(c for c in result["checks"] if c["name"] == name)


def test_cache_keeps_serving_from_the_database_while_the_sentinel_primary_is_killed(lab: LabManager, backend: str,
                                                                                    tmp_path: Path) -> None:
    lab("sentinel", backend)
    result, run_dir = _run(tmp_path, "cache-primary-kill", backend)
    history = read_history(run_dir / "history.jsonl")
    assert {e.kind for e in history.events} >= {"fault_inject", "fault_heal", "server_info", "role", "breaker"}
    fallback = _check(result, "cache_fallback")
    assert fallback["verdict"] is None and fallback["metrics"]["per_window"], fallback  # a measurement
    reads = [o for o in history.ops if o.op == "read"]
    assert any(o.value and o.value["source"] == "fallback" for o in reads)  # the database answered
    in_fault = [o for o in reads if o.phase == "fault"]
    assert sum(o.outcome == "ok" for o in in_fault) / len(in_fault) >= 0.99  # fallback kept serving
    failover = _check(result, "failover_time")
    assert failover["verdict"] is None and failover["metrics"]["failover_s"] is not None
    # two fault cycles, each failover seen by Sentinel's own +switch-master (ms resolution)
    assert [f["observed_by"].endswith("+switch-master") for f in failover["metrics"]["failovers"]] == [True, True]
    assert result["metrics"]["spread"]["availability_during"]["n"] == 2
    assert result["client_policy"]["socket_timeout_s"] == 0.25 and result["client_policy"]["retries"] == 0
    assert {c["name"] for c in result["measurements"]} >= {"errors_by_type", "time_to_detect", "failover_time"}
    assert (run_dir / "report.html").exists()


def test_queue_loses_no_acknowledged_message_when_a_consumer_is_killed_mid_batch(lab: LabManager, backend: str,
                                                                                 tmp_path: Path) -> None:
    # the producers run in two generator processes (each a share of the clients); consumers, faults,
    # drain and final read stay with the run's process
    lab("single", backend)
    result, run_dir = _run(tmp_path, "queue-consumer-kill", backend, workers=2)
    delivery = _check(result, "queue_delivery")
    assert delivery["verdict"] == "held", delivery
    m = delivery["metrics"]
    assert m["produced_acked"] > 0 and m["lost"] == 0
    assert m["redelivered_messages"] > 0  # the killed consumer's pending batch was claimed and retried
    assert m["pending_unprocessed"] == 0 and m["effects_in_store"] == m["produced_acked"]
    history = read_history(run_dir / "history.jsonl")
    assert any(e.kind == "fault_inject" and e.fields["fault"].startswith("client_kill") for e in history.events)
    assert {e.fields["name"] for e in history.events_of("worker")} >= {"generator-1", "generator-2"}
    produced = [o.args["id"] for o in history.workload if o.op == "produce"]
    assert produced and len(produced) == len(set(produced))  # job ids unique over both processes
    assert _check(result, "send_lag")["metrics"]["send_lag_p99_ms"] >= 0  # lags measured from the shared t0


def test_ctrl_c_heals_cleans_up_and_writes_an_interrupted_report(fresh_lab: LabManager, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "redislab.cli", "run", "cache-primary-kill", "--backend", "local",
                             "--duration", "30", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)

    def injected() -> bool:
        histories = list(tmp_path.glob("*/history.jsonl"))
        return bool(histories) and '"fault_inject"' in histories[0].read_text()

    wait_until(injected, 60, "the fault to be injected")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    run_dir = next(tmp_path.glob("*/history.jsonl")).parent
    result = json.loads((run_dir / "result.json").read_text())
    assert result["interrupted"] is True and result["verdict"] != "held"
    assert "interrupted" in (run_dir / "report.md").read_text().lower()
    assert active_faults() == [] and api.current() is None  # healed, and the run's topology is gone
