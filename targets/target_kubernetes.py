"""The ``kubernetes`` driver of a target file: node faults on the pods that run the nodes.

    driver: {type: kubernetes, namespace: redis, context: prod-eu}   # context: optional
    nodes: [{name: redis-1, address: ..., pod: redis-0}, ...]

An adapter from the target's node actions (kill / stop / start / pause / resume / state) to
``faults.kubernetes_driver.KubernetesDriver``: kill deletes the pod at once (grace period 0),
stop deletes it gracefully, start waits for the pod's controller to run it again (the lab
cannot recreate a pod itself), pause / resume SIGSTOP / SIGCONT the Redis process through
pods/exec (refused with the reason where the pod does not allow it). Refused, with one line,
when the ``kubernetes`` package or a kubeconfig (or in-cluster service account) is missing.
"""
from __future__ import annotations

import os
import time
from typing import Any

from labcommon.errors import LabError

START_TIMEOUT_S = 120.0  # s: how long `start` waits for the controller to run a deleted pod again
POLL_S = 1.0  # s between two reads of a pod while waiting


def _missing_package(target: Any, exc: ImportError) -> LabError:
    return LabError(f"target {target.name}: the kubernetes driver needs the `kubernetes` package "
                    f"({exc.name or exc} is not installed)", "pip install 'redis-failure-lab[kubernetes]'")


def api_client(cfg: dict[str, Any], target: Any) -> Any:
    """A configured ``kubernetes.client.ApiClient``: in-cluster (a pod's service account) when
    running in a pod and no ``context`` is named, else the kubeconfig (KUBECONFIG or ~/.kube/config)
    with ``context``. LabError with the reason when neither is usable."""
    try:
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config
    except ImportError as exc:
        raise _missing_package(target, exc) from None
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not cfg.get("context"):
            k8s_config.load_incluster_config()
            return k8s.ApiClient()
        return k8s_config.new_client_from_config(context=cfg.get("context"))
    except (k8s_config.ConfigException, OSError, ValueError) as exc:
        raise LabError(f"target {target.name}: the kubernetes driver has no usable kubeconfig ({exc})",
                       "set KUBECONFIG or create ~/.kube/config (kubectl config view), name driver.context, "
                       "or run the lab in a pod of the cluster") from None


class KubernetesTargetDriver:
    """Node control through the Kubernetes API, by the ``pod`` of each node in ``driver.namespace``."""

    def __init__(self, cfg: dict[str, Any], target: Any, client: Any = None,
                 start_timeout_s: float = START_TIMEOUT_S) -> None:
        try:
            from faults.kubernetes_driver import KubernetesDriver
        except ImportError as exc:
            raise _missing_package(target, exc) from None
        self.target = target
        self.namespace = str(cfg.get("namespace") or "default")
        self.driver = KubernetesDriver(self.namespace, client if client is not None else api_client(cfg, target))
        self.start_timeout_s = start_timeout_s

    def _pod(self, name: str) -> str:
        pod = self.target.node(name).pod
        if not pod:
            raise LabError(f"kubernetes driver: node {name} has no `pod` in {self.target.path}")
        return str(pod)

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        from faults.kubernetes_driver import Refused
        try:
            return fn(*args)
        except Refused as exc:
            raise LabError(f"target {self.target.name}: {what} refused: {exc}") from None
        except ApiException as exc:
            raise LabError(f"kubernetes {what} failed: {exc.status} {exc.reason}",
                           f"namespace {self.namespace}; check the pod name and the RBAC rules") from None

    def run(self, action: str, name: str) -> str:
        """``kill`` / ``stop`` / ``start`` / ``pause`` / ``resume`` node ``name``."""
        pod = self._pod(name)
        what = f"{action} pod {self.namespace}/{pod}"
        if action == "kill":
            self._call(what, self.driver.kill, pod)
        elif action == "stop":
            self._call(what, self.driver.delete, pod)
        elif action == "pause":
            self._call(what, self.driver.pause, pod)
        elif action == "resume":
            self._call(what, self.driver.resume, pod)
        elif action == "start":
            self._wait_running(name, pod)
        else:
            raise LabError(f"kubernetes driver: unknown action {action!r}; accepted: kill, stop, start, pause, resume")
        return ""

    def sweep(self) -> list[str]:
        """``redislab heal --target``: delete every NetworkChaos the lab created in the namespace and
        resume every pod it paused (found by their labels: also those of a run that crashed)."""
        undone: list[str] = self._call(f"heal sweep in namespace {self.namespace}", self.driver.heal)
        return [f"removed {what}" if what.startswith("networkchaos/") else f"resumed {what}" for what in undone]

    def _wait_running(self, name: str, pod: str) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while (state := self.state(name)) != "running":
            if time.monotonic() >= deadline:
                raise LabError(f"pod {self.namespace}/{pod} is {state} {self.start_timeout_s:g} s after start was "
                               "asked; the lab cannot recreate a pod, its controller (StatefulSet) must",
                               f"kubectl -n {self.namespace} describe pod {pod}")
            time.sleep(POLL_S)

    def state(self, name: str) -> str:
        """``running`` (phase Running, every container ready), ``paused`` (labelled by the lab's
        pause), else ``stopped`` (deleted, terminating, pending, not ready)."""
        from kubernetes.client.exceptions import ApiException

        from faults.kubernetes_driver import PAUSED_LABEL
        pod = self._pod(name)
        try:
            obj = self.driver.core.read_namespaced_pod(pod, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return "stopped"
            raise LabError(f"kubernetes read pod {self.namespace}/{pod} failed: {exc.status} {exc.reason}") from None
        meta = obj.metadata
        if meta is not None and (meta.labels or {}).get(PAUSED_LABEL) == "true":
            return "paused"
        statuses = (obj.status.container_statuses or []) if obj.status else []
        running = (meta is not None and meta.deletion_timestamp is None and obj.status is not None
                   and obj.status.phase == "Running" and bool(statuses) and all(s.ready for s in statuses))
        return "running" if running else "stopped"
