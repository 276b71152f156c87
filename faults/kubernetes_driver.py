"""Node faults on Kubernetes through the official client: kill/delete a pod, pause, partition, heal.

For the target driver (``redislab run --target FILE`` with ``driver: kubernetes``): it is
given a namespace and pod names and does nothing else on its own.

- ``kill(pod)``: delete with grace period 0 (SIGKILL; the StatefulSet starts a new pod).
- ``delete(pod)``: delete with the pod's own grace period (SIGTERM, then SIGKILL).
- ``pause(pod)`` / ``resume(pod)``: SIGSTOP / SIGCONT of the Redis process through
  ``pods/exec``. Kubernetes has no pause API; inside a container the server is PID 1, which
  ignores SIGSTOP sent from its own namespace, so this works only in pods with
  ``shareProcessNamespace: true`` (the lab's manifests set it). Otherwise ``Refused`` says why.
  A paused pod is labelled ``redislab.io/paused=true`` so a later heal finds it.
- ``partition(side_a, side_b)``: a Chaos Mesh NetworkChaos (``topologies.chaosmesh``), both directions.
- ``heal()``: deletes every NetworkChaos labelled as created by the lab and resumes every pod
  labelled paused, in the namespace, whoever created them in which run.

Not exercised here: no Kubernetes cluster can run on this machine class. The tests check
the requests this class builds through the client's own serialisation and models (only the
HTTP transport is replaced), and the NetworkChaos bodies against the CRD-derived schema.
"""
from __future__ import annotations

import uuid
from typing import Any, cast

from kubernetes import client as k8s
from kubernetes.stream import stream

from topologies import chaosmesh

PAUSED_LABEL = "redislab.io/paused"
CONTAINER = "redis"  # the Redis container of the lab's pods (the other one is "toxiproxy")
# SIGSTOP/SIGCONT every redis-server / redis-sentinel process the container can see.
_SIGNAL = "for p in $(pidof redis-server redis-sentinel); do kill -{sig} $p; done"


class Refused(Exception):
    """The cluster or the pod does not allow this fault; the message says why and what would."""


def pause_command(pod_spec: k8s.V1PodSpec) -> list[str]:
    """The exec command that SIGSTOPs the Redis process of a pod with spec ``pod_spec``,
    or Refused with the reason when such a pod cannot be paused this way."""
    if not pod_spec.share_process_namespace:
        raise Refused("pause needs shareProcessNamespace: true in the pod spec (inside its own PID namespace "
                      "redis-server is PID 1 and ignores SIGSTOP); the lab's manifests in "
                      "topologies/kubernetes/ set it")
    if not any(c.name == CONTAINER for c in pod_spec.containers):
        raise Refused(f"pause needs a container named {CONTAINER!r} with a shell and pidof; "
                      f"containers: {', '.join(c.name for c in pod_spec.containers)}")
    return ["sh", "-c", _SIGNAL.format(sig="STOP")]


def resume_command() -> list[str]:
    return ["sh", "-c", _SIGNAL.format(sig="CONT")]


class KubernetesDriver:
    """Faults on pods of one namespace. ``api_client``: a configured ``kubernetes.client.ApiClient``
    (e.g. after ``kubernetes.config.load_incluster_config()`` or ``load_kube_config()``)."""

    def __init__(self, namespace: str, api_client: k8s.ApiClient, run_id: str | None = None,
                 partition_safety_s: float | None = 600.0):
        self.namespace = namespace
        self.core = k8s.CoreV1Api(api_client)
        self.custom = k8s.CustomObjectsApi(api_client)
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.partition_safety_s = partition_safety_s  # Chaos Mesh lifts a partition after this, s
        self._partitions = 0

    # -- pods --------------------------------------------------------------------------------
    def kill(self, pod: str) -> None:
        """SIGKILL: delete at once (grace period 0)."""
        self.core.delete_namespaced_pod(pod, self.namespace, body=k8s.V1DeleteOptions(grace_period_seconds=0))

    def delete(self, pod: str) -> None:
        """Graceful delete: the pod's terminationGracePeriodSeconds applies."""
        self.core.delete_namespaced_pod(pod, self.namespace, body=k8s.V1DeleteOptions())

    def pause(self, pod: str) -> None:
        spec = self.core.read_namespaced_pod(pod, self.namespace).spec
        if spec is None:
            raise Refused(f"pause: pod {pod} has no spec")
        command = pause_command(spec)  # Refused before anything changes
        self._label_paused(pod, True)  # first: a heal after a crash here still resumes it
        self._exec(pod, command)

    def resume(self, pod: str) -> None:
        self._exec(pod, resume_command())
        self._label_paused(pod, False)

    def _label_paused(self, pod: str, paused: bool) -> None:
        # a JSON merge patch: null removes the label
        self.core.patch_namespaced_pod(pod, self.namespace, {"metadata": {"labels": {PAUSED_LABEL: "true" if paused
                                                                                        else None}}})

    def _exec(self, pod: str, command: list[str]) -> str:
        return stream(self.core.connect_get_namespaced_pod_exec, pod, self.namespace, container=CONTAINER,
                      command=command, stderr=True, stdin=False, stdout=True, tty=False)

    # -- network -----------------------------------------------------------------------------
    def partition_body(self, side_a: list[str], side_b: list[str]) -> dict[str, Any]:
        """The NetworkChaos ``partition`` would create (validated), without creating it."""
        name = f"redislab-{self.run_id}-partition-{self._partitions + 1}"
        return chaosmesh.partition(name, self.namespace, side_a, side_b, run_id=self.run_id,
                                   duration_s=self.partition_safety_s)

    def partition(self, side_a: list[str], side_b: list[str]) -> str:
        """Cut pods ``side_a`` from pods ``side_b`` both ways; returns the NetworkChaos name."""
        body = self.partition_body(side_a, side_b)
        self.custom.create_namespaced_custom_object(chaosmesh.GROUP, chaosmesh.VERSION, self.namespace,
                                                    chaosmesh.PLURAL, body)
        self._partitions += 1
        return str(body["metadata"]["name"])

    # -- heal --------------------------------------------------------------------------------
    def heal(self) -> list[str]:
        """Delete every NetworkChaos the lab created and resume every pod it paused, in the
        namespace (found by their labels, so a heal from a new process finds them too).
        Returns what it undid, e.g. ``["networkchaos/redislab-1a2b-partition-1", "pod/x-0"]``."""
        undone = []
        found = self.custom.list_namespaced_custom_object(chaosmesh.GROUP, chaosmesh.VERSION, self.namespace,
                                                          chaosmesh.PLURAL, label_selector=chaosmesh.LABEL_SELECTOR)
        for item in cast(dict[str, Any], found).get("items", []):  # the API's JSON; typed `object` by the client
            name = item["metadata"]["name"]
            self.custom.delete_namespaced_custom_object(chaosmesh.GROUP, chaosmesh.VERSION, self.namespace,
                                                        chaosmesh.PLURAL, name)
            undone.append(f"{chaosmesh.PLURAL}/{name}")
        paused = self.core.list_namespaced_pod(self.namespace, label_selector=f"{PAUSED_LABEL}=true")
        for pod in paused.items:
            name = pod.metadata.name if pod.metadata is not None else None
            if name is None:  # the API names every pod it lists; typed optional by the client
                continue
            self.resume(name)
            undone.append(f"pod/{name}")
        return undone
