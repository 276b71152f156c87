"""The generated Kubernetes manifests: current, valid against the Kubernetes schemas (offline,
kubernetes-validate's bundled schemas), and loadable as the official client's models.
No cluster: what these tests cannot show is that the pods start and form a topology."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import kubernetes_validate
import pytest
import yaml
from kubernetes import client as k8s

from faults.kubernetes_driver import pause_command
from topologies import chaosmesh, k8s_gen
from topologies.spec import build_spec

K8S_VERSION = "1.29"  # the oldest Kubernetes the manifests are checked against; also the newest below
FILES = sorted(p for p in k8s_gen.K8S_DIR.rglob("*.yaml"))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_committed_manifests_are_current() -> None:
    assert k8s_gen.main(["--check"]) == 0, "run: python -m topologies.k8s_gen"


def test_stale_manifest_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for rel, text in k8s_gen.render().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.setattr(k8s_gen, "K8S_DIR", tmp_path)
    assert k8s_gen.main(["--check"]) == 0
    (tmp_path / "sentinel.yaml").write_text((tmp_path / "sentinel.yaml").read_text().replace("7101", "7199"))
    assert k8s_gen.main(["--check"]) == 1


@pytest.mark.parametrize("version", [K8S_VERSION, kubernetes_validate.utils.latest_version()])
@pytest.mark.parametrize("path", [p for p in FILES if "chaos" not in p.parts], ids=lambda p: p.name)
def test_manifests_validate_against_kubernetes_schemas(path: Path, version: str) -> None:
    docs = _docs(path)
    assert docs
    for doc in docs:  # strict: an unknown field (a typo) is an error, not silently dropped
        kubernetes_validate.validate(doc, version, strict=True)


def test_validation_catches_a_bad_field() -> None:
    sts = next(d for d in _docs(k8s_gen.K8S_DIR / "single.yaml") if d["kind"] == "StatefulSet")
    sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSION, strict=True)


class _Model(Protocol):
    """What the test reads from any of the client's top-level models."""

    @property
    def metadata(self) -> k8s.V1ObjectMeta | None: ...


class _ModelClass(Protocol):
    """A client model class: `from_dict` is a classmethod returning an instance or None."""

    def from_dict(self, obj: dict[str, Any] | None) -> _Model | None: ...


_MODELS: dict[str, _ModelClass] = {
    "StatefulSet": k8s.V1StatefulSet, "Service": k8s.V1Service, "ConfigMap": k8s.V1ConfigMap,
    "Job": k8s.V1Job, "ServiceAccount": k8s.V1ServiceAccount, "Role": k8s.V1Role,
    "RoleBinding": k8s.V1RoleBinding, "PersistentVolumeClaim": k8s.V1PersistentVolumeClaim}


@pytest.mark.parametrize("path", [p for p in FILES if "chaos" not in p.parts], ids=lambda p: p.name)
def test_manifests_load_as_client_models(path: Path) -> None:
    for doc in _docs(path):
        obj = _MODELS[doc["kind"]].from_dict(doc)
        assert obj is not None and obj.metadata is not None
        assert obj.metadata.name == doc["metadata"]["name"]


@pytest.mark.parametrize("topology", k8s_gen.TOPOLOGIES)
def test_topology_shape(topology: str) -> None:
    """A StatefulSet per node of the spec, every node behind its Toxiproxy sidecar on the
    spec's proxied ports, the password only as a Secret reference, pods pausable."""
    spec = build_spec(topology)
    docs = _docs(k8s_gen.K8S_DIR / f"{topology}.yaml")
    sets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}
    assert sorted(sets) == sorted(f"{topology}-{n.name}" for n in spec.nodes)
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    for node in spec.nodes:
        sts = sets[f"{topology}-{node.name}"]
        model = k8s.V1StatefulSet.from_dict(sts)
        assert model is not None
        pod = model.spec.template.spec
        assert pod is not None
        tox = next(c for c in pod.containers if c.name == "toxiproxy")
        assert tox.ports is not None
        assert {p.container_port for p in tox.ports} >= set(node.proxy_ports())
        proxies = json.loads(cm["data"][f"toxiproxy-{node.name}.json"])
        assert {p["listen"] for p in proxies} == {f"0.0.0.0:{p}" for p in node.proxy_ports()}
        assert all(p["upstream"].startswith("127.0.0.1:") for p in proxies)
        script = cm["data"][f"start-{node.name}.sh"]
        assert "--bind 127.0.0.1" in script or "bind 127.0.0.1" in script  # reachable only through the proxy
        assert "bind-source-addr" not in script
        assert pause_command(pod)[0] == "sh"
    text = (k8s_gen.K8S_DIR / f"{topology}.yaml").read_text()
    assert "REDISLAB_PASSWORD" not in text and "kind: Secret\n" not in text


def test_sentinel_announces_stable_names_and_cluster_pod_ips() -> None:
    cm = next(d for d in _docs(k8s_gen.K8S_DIR / "sentinel.yaml") if d["kind"] == "ConfigMap")["data"]
    assert "sentinel resolve-hostnames yes" in cm["start-sentinel-1.sh"]
    assert "sentinel monitor lab sentinel-redis-1-0.redislab-sentinel 7101 2" in cm["start-sentinel-1.sh"]
    assert "--replicaof sentinel-redis-1-0.redislab-sentinel 7101" in cm["start-redis-2.sh"]
    assert "127.0.0.1 7101" not in cm["start-sentinel-1.sh"]
    cl = next(d for d in _docs(k8s_gen.K8S_DIR / "cluster.yaml") if d["kind"] == "ConfigMap")["data"]
    assert '--cluster-announce-ip "$POD_IP" --cluster-announce-port 7201' in cl["start-redis-1.sh"]
    assert '"${IP_6}:7206" --cluster-replicas 1' in cl["cluster-init.sh"]


@pytest.mark.parametrize("path", [p for p in FILES if "chaos" in p.parts], ids=lambda p: p.name)
def test_partition_examples_validate_and_cut_both_ways(path: Path) -> None:
    (doc,) = _docs(path)
    chaosmesh.validate(doc)
    assert doc["spec"]["direction"] == "both"
    assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "redislab"
