"""The failover probe on real topologies: every client faces the same kill, and each outage
splits at the promotion the topology announced (no timing is asserted: that is `make bench`)."""
from __future__ import annotations

import pytest

from experiments import failover_probe
from labcommon.poll import wait_until
from tests.conftest import LabManager

pytestmark = pytest.mark.integration


def _check_trial(trial: dict, clients: list[str]) -> None:
    assert trial["promoted_t"] is not None and trial["promoted_t"] > trial["kill_t"], trial["events"]
    for name in clients:
        r = trial["clients"][name]
        assert "error" not in r, r
        assert r["failed_attempts"] > 0, r  # it wrote into the outage, not only after it
        assert r["outage_s"] == pytest.approx(r["server_s"] + r["client_s"])
        assert r["client_s"] >= 0


def test_sentinel_kill_is_seen_by_every_client_and_split_at_switch_master(lab: LabManager, backend: str) -> None:
    topo = lab("sentinel", backend)
    old = topo.primary()
    assert old is not None
    try:
        trial = failover_probe.failover_trial(topo, ["plain", "lab"], hold_s=0.0)
        assert trial["victim"] == old
        assert any(e["event"] == "+switch-master" for e in trial["events"])
        _check_trial(trial, ["plain", "lab"])
    finally:
        topo.start(old)
    wait_until(lambda: topo.role(old) == "replica", 30, f"{old} demoted to replica")


def test_cluster_kill_is_split_at_the_replicas_role_change(lab: LabManager, backend: str) -> None:
    if backend != "local":
        pytest.skip("the probe's Cluster path does not depend on the backend; the Sentinel test covers docker")
    topo = lab("cluster", backend)
    victim, replica = failover_probe.victim_and_replica(topo, f"{failover_probe.KEY_TAG}:probe")
    assert replica is not None
    try:
        trial = failover_probe.failover_trial(topo, ["plain", "lab-async"], hold_s=0.0)
        assert trial["victim"] == victim
        assert [(e["source"], e["detail"]) for e in trial["events"] if e["event"] == "role"][-1] == (replica, "master")
        _check_trial(trial, ["plain", "lab-async"])
    finally:
        topo.start(victim)
    wait_until(lambda: topo.role(victim) == "replica", 30, f"{victim} rejoined as a replica")
