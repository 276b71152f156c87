"""The target file's ``kubernetes`` driver (targets.target_kubernetes): node actions become the
requests of faults.kubernetes_driver, built by the official client with only the HTTP transport
replaced (a recorder, as in tests/faults/test_kubernetes_driver.py); no cluster runs here."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes.client import rest

from labcommon.errors import LabError
from targets import target
from targets.target_kubernetes import KubernetesTargetDriver

TARGET = """
name: k8s-lab
kind: sentinel
master_name: lab
driver: {type: kubernetes, namespace: redis}
nodes:
  - {name: redis-1, address: "10.0.0.1:6379", pod: sentinel-redis-1-0}
  - {name: redis-2, address: "10.0.0.2:6380", pod: sentinel-redis-2-0}
sentinels:
  - {name: sentinel-1, address: "10.0.0.1:26379", pod: sentinel-sentinel-1-0}
limits: {key_prefix: "lab:", allowed_faults: [kill, stop, pause], allow_destructive: true}
"""


class NotSent(Exception):
    pass


class RecordingClient(k8s.ApiClient):
    """Records each request; answers with ``answers[path]`` (status, JSON body) when given, else
    raises NotSent (nothing leaves the process)."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, dict[str, Any]]] | None = None) -> None:
        super().__init__(k8s.Configuration(host="https://k8s.invalid"))
        self.requests: list[tuple[str, str, object]] = []
        self.answers = answers or {}

    def call_api(self, method: str, url: str, header_params: object = None, body: object = None,  # answers from a table
                 post_params: object = None, _request_timeout: object = None) -> rest.RESTResponse:
        self.requests.append((method, url, body))
        path = url.removeprefix("https://k8s.invalid").split("?")[0]
        if (method, path) not in self.answers:
            raise NotSent(method, url)
        status, doc = self.answers[(method, path)]
        raw = urllib3.HTTPResponse(body=json.dumps(doc).encode(), status=status, reason="x",
                                   headers={"content-type": "application/json"}, preload_content=True)
        return rest.RESTResponse(raw)


def _target(tmp_path: Path, text: str = TARGET) -> target.Target:
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(text))
    return target.load(path)


def _driver(tmp_path: Path, answers: dict[tuple[str, str], tuple[int, dict[str, Any]]] | None = None
            ) -> tuple[KubernetesTargetDriver, RecordingClient]:
    api = RecordingClient(answers)
    driver = _target(tmp_path).driver
    assert driver is not None
    return KubernetesTargetDriver(driver, _target(tmp_path), client=api, start_timeout_s=0), api


POD = "/api/v1/namespaces/redis/pods/sentinel-redis-1-0"


def _pod(phase: str = "Running", ready: bool = True, labels: dict[str, str] | None = None,
         deleting: bool = False) -> dict[str, Any]:
    meta = {"name": "sentinel-redis-1-0", "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-29T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "status": {"phase": phase, "containerStatuses": [
                {"name": "redis", "ready": ready, "restartCount": 0, "image": "r", "imageID": ""}]}}


def test_kill_deletes_the_nodes_pod_at_once(tmp_path: Path) -> None:
    d, api = _driver(tmp_path)
    with pytest.raises(NotSent):
        d.run("kill", "redis-1")
    assert api.requests == [("DELETE", "https://k8s.invalid" + POD, {"gracePeriodSeconds": 0})]


def test_stop_is_a_graceful_delete_and_pause_reads_the_pod_first(tmp_path: Path) -> None:
    d, api = _driver(tmp_path)
    with pytest.raises(NotSent):
        d.run("stop", "sentinel-1")
    assert api.requests[0] == ("DELETE", "https://k8s.invalid/api/v1/namespaces/redis/pods/sentinel-sentinel-1-0", {})
    with pytest.raises(NotSent):
        d.run("pause", "redis-2")
    assert api.requests[1][:2] == ("GET", "https://k8s.invalid/api/v1/namespaces/redis/pods/sentinel-redis-2-0")


def test_pause_refused_by_the_pod_is_one_line(tmp_path: Path) -> None:
    pod = {**_pod(), "spec": {"containers": [{"name": "redis"}], "shareProcessNamespace": False}}
    d, api = _driver(tmp_path, {("GET", POD): (200, pod)})
    with pytest.raises(LabError, match="pause pod redis/sentinel-redis-1-0 refused: pause needs shareProcessNamespace"):
        d.run("pause", "redis-1")
    assert [m for m, _, _ in api.requests] == ["GET"]  # nothing changed


@pytest.mark.parametrize("answer, state", [
    ((200, _pod()), "running"),
    ((200, _pod(labels={"redislab.io/paused": "true"})), "paused"),
    ((200, _pod(phase="Pending", ready=False)), "stopped"),
    ((200, _pod(ready=False)), "stopped"),
    ((200, _pod(deleting=True)), "stopped"),
    ((404, {"kind": "Status", "code": 404}), "stopped"),
])
def test_state_from_the_pod(tmp_path: Path, answer: tuple[int, dict[str, Any]], state: str) -> None:
    d, api = _driver(tmp_path, {("GET", POD): answer})
    assert d.state("redis-1") == state
    assert api.requests[0][:2] == ("GET", "https://k8s.invalid" + POD)


def test_start_waits_for_the_controller_and_says_so(tmp_path: Path) -> None:
    d, _ = _driver(tmp_path, {("GET", POD): (404, {"kind": "Status", "code": 404})})
    with pytest.raises(LabError, match="cannot recreate a pod, its controller"):
        d.run("start", "redis-1")
    d, _ = _driver(tmp_path, {("GET", POD): (200, _pod())})
    d.run("start", "redis-1")  # running: nothing to wait for


def test_api_errors_are_one_line(tmp_path: Path) -> None:
    d, _ = _driver(tmp_path, {("DELETE", POD): (403, {"kind": "Status", "code": 403})})
    with pytest.raises(LabError, match="kubernetes kill pod redis/sentinel-redis-1-0 failed: 403"):
        d.run("kill", "redis-1")


def test_target_without_kubeconfig_is_refused_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(LabError, match="kubernetes driver has no usable kubeconfig"):
        target.TargetTopology(_target(tmp_path))


def test_target_without_the_package_is_refused_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes -> ImportError
    monkeypatch.delitem(sys.modules, "faults.kubernetes_driver", raising=False)
    with pytest.raises(LabError, match="needs the `kubernetes` package"):
        target.TargetTopology(_target(tmp_path))


def test_destructive_faults_need_a_pod_per_node(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="kubernetes driver: nodes without `pod`: sentinel-1"):
        _target(tmp_path, TARGET.replace(", pod: sentinel-sentinel-1-0", ""))


def test_target_backend_drives_the_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path: TargetBackend (limits) -> the adapter -> the DELETE request."""
    import targets.target_kubernetes as tk
    api = RecordingClient()
    monkeypatch.setattr(tk, "api_client", lambda cfg, tg: api)  # no kubeconfig here: hand the recorder in
    topo = target.TargetTopology(_target(tmp_path))
    with pytest.raises(NotSent):
        topo.backend.kill("redis-2")
    assert api.requests == [("DELETE", "https://k8s.invalid/api/v1/namespaces/redis/pods/sentinel-redis-2-0",
                             {"gracePeriodSeconds": 0})]


CHAOS = "/apis/chaos-mesh.org/v1alpha1/namespaces/redis/networkchaos"


def test_heal_sweeps_the_labs_chaos_objects_and_paused_pods(tmp_path: Path) -> None:
    """`redislab heal --target`: what a crashed run left in the namespace is found by label and undone."""
    chaos = {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaosList",
             "items": [{"metadata": {"name": "redislab-1a2b-partition-1"}}]}
    pods = {"apiVersion": "v1", "kind": "PodList", "items": []}
    driver, api = _driver(tmp_path, {("GET", CHAOS): (200, chaos),
                                     ("DELETE", f"{CHAOS}/redislab-1a2b-partition-1"): (200, {}),
                                     ("GET", "/api/v1/namespaces/redis/pods"): (200, pods)})
    assert driver.sweep() == ["removed networkchaos/redislab-1a2b-partition-1"]
    listed = [url for method, url, _ in api.requests if method == "GET"]
    assert all("labelSelector=" in url for url in listed)  # only the lab's objects, never the namespace's others
    assert ("DELETE", f"https://k8s.invalid{CHAOS}/redislab-1a2b-partition-1") in [(m, u) for m, u, _ in api.requests]


def test_target_heal_all_runs_the_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import targets.target_kubernetes as tk
    swept: list[str] = []
    monkeypatch.setattr(tk, "api_client", lambda cfg, tg: RecordingClient())

    def sweep(self: tk.KubernetesTargetDriver) -> list[str]:
        swept.append("swept")
        return ["removed x"]
    monkeypatch.setattr(tk.KubernetesTargetDriver, "sweep", sweep)
    monkeypatch.setattr(tk.KubernetesTargetDriver, "state", lambda self, name: "running")
    topo = target.TargetTopology(_target(tmp_path))
    assert topo.heal_all()[:1] == ["removed x"] and swept == ["swept"]
