"""The kubernetes driver's requests, built by the official client (its models, URL and body
serialisation) with only the HTTP transport replaced by a recorder: no cluster runs here, so
what is checked is what would be sent, not what a cluster does with it."""
from __future__ import annotations

import json
import urllib.parse

import pytest
from kubernetes import client as k8s

from faults.kubernetes_driver import KubernetesDriver, Refused, pause_command
from topologies import chaosmesh


class NotSent(Exception):
    pass


class RecordingClient(k8s.ApiClient):
    """An ApiClient whose transport records the request instead of sending it."""

    def __init__(self) -> None:
        super().__init__(k8s.Configuration(host="https://k8s.invalid"))
        self.requests: list[tuple[str, str, object]] = []

    def call_api(self, method: str, url: str, header_params: object = None, body: object = None,  # type: ignore[override]  # records instead of sending; the client's signature has more parameters
                 post_params: object = None, _request_timeout: object = None) -> None:
        self.requests.append((method, url, body))
        raise NotSent(method, url)


def _driver() -> tuple[KubernetesDriver, RecordingClient]:
    api = RecordingClient()
    return KubernetesDriver("lab", api, run_id="r1"), api


def test_kill_is_a_delete_with_grace_period_zero() -> None:
    d, api = _driver()
    with pytest.raises(NotSent):
        d.kill("sentinel-redis-1-0")
    method, url, body = api.requests[0]
    assert method == "DELETE"
    assert url == "https://k8s.invalid/api/v1/namespaces/lab/pods/sentinel-redis-1-0"
    assert body == {"gracePeriodSeconds": 0}


def test_delete_keeps_the_pods_grace_period() -> None:
    d, api = _driver()
    with pytest.raises(NotSent):
        d.delete("sentinel-redis-1-0")
    assert api.requests[0][2] == {}


def test_partition_creates_a_valid_networkchaos_both_ways() -> None:
    d, api = _driver()
    with pytest.raises(NotSent):
        d.partition(["cluster-redis-1-0", "runner-x"], ["cluster-redis-2-0", "cluster-redis-3-0"])
    method, url, body = api.requests[0]
    assert (method, url) == ("POST", "https://k8s.invalid/apis/chaos-mesh.org/v1alpha1/namespaces/lab/networkchaos")
    assert isinstance(body, dict)
    chaosmesh.validate(body)
    assert body["spec"]["direction"] == "both"
    assert body["spec"]["selector"] == {"pods": {"lab": ["cluster-redis-1-0", "runner-x"]}}
    assert body["spec"]["target"]["selector"]["pods"]["lab"] == ["cluster-redis-2-0", "cluster-redis-3-0"]
    assert body["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "redislab"


def test_heal_lists_lab_objects_by_label() -> None:
    d, api = _driver()
    with pytest.raises(NotSent):
        d.heal()
    method, url, _ = api.requests[0]
    assert method == "GET"
    assert url.startswith("https://k8s.invalid/apis/chaos-mesh.org/v1alpha1/namespaces/lab/networkchaos?")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["labelSelector"] == ["app.kubernetes.io/managed-by=redislab"]


def test_pause_label_patch_body() -> None:
    d, api = _driver()
    with pytest.raises(NotSent):
        d._label_paused("p-0", False)
    method, url, body = api.requests[0]
    assert method == "PATCH" and url.endswith("/namespaces/lab/pods/p-0")
    assert json.loads(json.dumps(body)) == {"metadata": {"labels": {"redislab.io/paused": None}}}


def test_exec_request_is_a_pods_exec_url() -> None:
    """The pause command reaches the API as pods/exec on the redis container (checked through
    the generated method; the WebSocket upgrade itself is not exercised)."""
    d, api = _driver()
    with pytest.raises(NotSent):
        d.core.connect_get_namespaced_pod_exec("p-0", "lab", container="redis", command=["sh", "-c", "x"],
                                               stdout=True, stderr=True)
    assert "/namespaces/lab/pods/p-0/exec?" in api.requests[0][1] and "container=redis" in api.requests[0][1]


@pytest.mark.parametrize("share, error", [(None, "shareProcessNamespace"), (False, "shareProcessNamespace")])
def test_pause_is_refused_with_the_reason(share: bool | None, error: str) -> None:
    spec = k8s.V1PodSpec(containers=[k8s.V1Container(name="redis")], share_process_namespace=share)
    with pytest.raises(Refused, match=error):
        pause_command(spec)


def test_pause_needs_the_redis_container() -> None:
    spec = k8s.V1PodSpec(containers=[k8s.V1Container(name="app")], share_process_namespace=True)
    with pytest.raises(Refused, match="'redis'"):
        pause_command(spec)


@pytest.mark.parametrize("a, b, match", [([], ["x"], "both sides"),
                                         (["x"], ["x", "y"], "on both sides of a partition: x"),
                                         (["Bad_Name"], ["y"], "does not match")])
def test_bad_partitions_are_refused(a: list[str], b: list[str], match: str) -> None:
    with pytest.raises(chaosmesh.ChaosSpecError, match=match):
        chaosmesh.partition("p", "lab", a, b, run_id="r")


def test_schema_rejects_a_misspelt_field() -> None:
    body = chaosmesh.partition("p", "lab", ["a"], ["b"], run_id="r")
    body["spec"]["directon"] = body["spec"].pop("direction")
    with pytest.raises(chaosmesh.ChaosSpecError):
        chaosmesh.validate(body)
