"""The Chaos Toolkit round trip: an exported experiment run by `chaos run` on the local backend
reports the outcome `redislab run` gives for the same experiment (the topology recovered, a
primary serves after the heal), and leaves no fault active."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.runner import RunRequest, run_experiment
from faults.injector import active_faults
from redislab.ctk import export, probes
from tests.conftest import LabManager

pytestmark = pytest.mark.integration
EXPERIMENT = "cache-primary-kill"  # SIGKILL of the Sentinel primary
CHAOS = Path(sys.executable).with_name("chaos")


def _chaos_run(tmp_path: Path) -> dict:
    exp_file, journal = tmp_path / "experiment.json", tmp_path / "journal.json"
    exp_file.write_text(json.dumps(export.experiment(EXPERIMENT, cycles=1)))
    res = subprocess.run([str(CHAOS), "--no-version-check", "--log-file", str(tmp_path / "chaostoolkit.log"),
                          "run", "--journal-path", str(journal), "--rollback-strategy", "always", str(exp_file)],
                         capture_output=True, text=True, timeout=240, env=dict(os.environ), cwd=tmp_path)
    assert journal.exists(), res.stderr[-2000:]
    return json.loads(journal.read_text())


def test_chaos_run_matches_redislab_run(lab: LabManager, tmp_path: Path) -> None:
    topo = lab("sentinel", "local")
    before = probes.failover_state()
    assert before["agreed"], before

    journal = _chaos_run(tmp_path)
    assert journal["status"] == "completed", [r.get("exception") for r in journal["run"]]
    runs = {r["activity"]["provider"]["func"]: r for r in journal["run"]}
    assert runs["inject_fault"]["status"] == "succeeded"
    assert runs["inject_fault"]["output"] == {"kind": "kill", "target": before["primary"], "params": {}}
    assert runs["heal"]["output"] == [f"kill:{before['primary']}"]
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded"]
    ctk_recovered = journal["steady_states"]["after"]["steady_state_met"] and not journal["deviated"]
    assert journal["steady_states"]["before"]["steady_state_met"]
    assert active_faults() == []
    after = probes.failover_state()
    assert after["agreed"] and after["primary"] != before["primary"], after  # Sentinel promoted a replica
    assert topo.role(before["primary"]) == "replica"  # the restarted old primary follows the new one

    run_dir = run_experiment(RunRequest(EXPERIMENT, topology="sentinel", backend="local", cycles=1,
                                        out=str(tmp_path / "results"), progress=False))
    result = json.loads((run_dir / "result.json").read_text())
    recover = next(c for c in result["checks"] if c["name"] == "time_to_recover")
    failover = next(c for c in result["checks"] if c["name"] == "failover_time")
    assert failover["metrics"]["failover_s"] is not None  # the lab's run saw a failover too
    # the question the hypothesis asks, answered by both: did the topology recover after the heal?
    assert ctk_recovered is (recover["verdict"] == "held") is True, (journal["steady_states"]["after"], recover)
    # the history probe gives a Chaos Toolkit hypothesis the lab's verdict on a recorded run
    assert probes.history_check(str(run_dir), "time_to_recover")["status"] == recover["verdict"]
    assert active_faults() == []
