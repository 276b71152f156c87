"""Chaos Mesh ``NetworkChaos`` objects for network partitions on Kubernetes, and their offline check.

A partition is a NetworkChaos with ``action: partition`` and ``direction: both`` between
the pods of one side (``selector``) and the pods of the other (``target``): an inbound-only
cut is not a partition (cluster nodes refresh their peers' view of them with every packet
they still send). Sides are given as pod names; Chaos Mesh then ignores every other
selector field, so nothing else in the namespace is touched.

Every object the lab creates carries ``CREATED_BY`` in its labels; healing deletes every
NetworkChaos that carries it (see ``faults.kubernetes_driver``).

Chaos Mesh's CRDs are not among kubernetes-validate's schemas. ``NETWORK_CHAOS_SCHEMA`` is a
JSON Schema written here from the fields of the CRD (chaos-mesh/chaos-mesh,
config/crd/bases/chaos-mesh.org_networkchaos.yaml: ``spec.action``/``mode``/``direction``
enums, ``selector.pods`` as namespace -> pod names, ``target.{mode, selector}`` required),
restricted to the fields the lab writes (``additionalProperties: false``), so a typo in a
field name fails here instead of being pruned silently by the API server. It checks
structure only: what Chaos Mesh's admission webhook checks beyond the CRD (for example that
the pods exist) is not checked offline.
"""
from __future__ import annotations

import re
from typing import Any

import jsonschema

GROUP = "chaos-mesh.org"
VERSION = "v1alpha1"
PLURAL = "networkchaos"
KIND = "NetworkChaos"
CREATED_BY = {"app.kubernetes.io/managed-by": "redislab"}  # on every object the lab creates at run time
LABEL_SELECTOR = ",".join(f"{k}={v}" for k, v in CREATED_BY.items())
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # an RFC 1123 label (object and pod names)
_MODES = ["one", "all", "fixed", "fixed-percent", "random-max-percent"]
_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"  # Go time.ParseDuration

_LABELS = {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}}
_SELECTOR = {
    "type": "object",
    "properties": {
        "namespaces": {"type": "array", "items": {"type": "string"}},
        "labelSelectors": _LABELS,
        "pods": {"type": "object", "minProperties": 1,
                 "additionalProperties": {"type": "array", "minItems": 1,
                                          "items": {"type": "string", "pattern": _NAME.pattern}}},
    },
    "additionalProperties": False,
    "minProperties": 1,
}
NETWORK_CHAOS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": f"{GROUP}/{VERSION}"},
        "kind": {"const": KIND},
        "metadata": {
            "type": "object",
            "required": ["name", "labels"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": _NAME.pattern, "maxLength": 63},
                "namespace": {"type": "string", "pattern": _NAME.pattern, "maxLength": 63},
                "labels": _LABELS,
            },
        },
        "spec": {
            "type": "object",
            "required": ["action", "mode", "selector", "direction", "target"],
            "additionalProperties": False,
            "properties": {
                "action": {"enum": ["netem", "delay", "loss", "duplicate", "corrupt", "partition", "bandwidth"]},
                "mode": {"enum": _MODES},
                "selector": _SELECTOR,
                "direction": {"enum": ["to", "from", "both"]},
                "target": {
                    "type": "object",
                    "required": ["mode", "selector"],
                    "additionalProperties": False,
                    "properties": {"mode": {"enum": _MODES}, "selector": _SELECTOR},
                },
                "duration": {"type": "string", "pattern": _DURATION},
            },
        },
    },
}


class ChaosSpecError(ValueError):
    """A NetworkChaos the lab would send does not match the schema; carries the field path."""


def partition(name: str, namespace: str, side_a: list[str], side_b: list[str], *,
              run_id: str, duration_s: float | None = None) -> dict[str, Any]:
    """A NetworkChaos cutting pods ``side_a`` from pods ``side_b`` in both directions.

    ``duration_s``: Chaos Mesh lifts the cut by itself after this many seconds (a safety net
    for a runner that dies; the lab still deletes the object when it heals). None: until deleted.
    """
    if not side_a or not side_b:
        raise ChaosSpecError(f"a partition needs pods on both sides, got {side_a!r} | {side_b!r}")
    overlap = sorted(set(side_a) & set(side_b))
    if overlap:
        raise ChaosSpecError(f"pods on both sides of a partition: {', '.join(overlap)}")
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {**CREATED_BY, "redislab.io/run": run_id, "redislab.io/fault": "partition"}},
        "spec": {
            "action": "partition",
            "mode": "all",
            "selector": {"pods": {namespace: list(side_a)}},
            "direction": "both",
            "target": {"mode": "all", "selector": {"pods": {namespace: list(side_b)}}},
        },
    }
    if duration_s is not None:
        body["spec"]["duration"] = f"{max(1, round(duration_s))}s"
    validate(body)
    return body


def validate(body: dict[str, Any]) -> None:
    """Raise ChaosSpecError naming the first field that does not match NETWORK_CHAOS_SCHEMA."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(NETWORK_CHAOS_SCHEMA).iter_errors(body))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ChaosSpecError(f"NetworkChaos {where}: {error.message}")
