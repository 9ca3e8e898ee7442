"""The rows of `kubectl get` tables, one builder per resource, as kubectl's printers fill them.

Every cell is computed here (AGE included), because kubectl prints a server-side Table as it
comes. Columns are in `kube`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from kubesim_images.clock import WallClock
from kubesim_images.daemon import kube
from kubesim_images.workloads.objects import selector_string

Row = Callable[[dict[str, Any]], list[Any]]


def age(clock: WallClock, stamp: str | None) -> str:
    if not stamp:
        return "<unknown>"
    now = clock.to_datetime(clock.now_ns())
    then = dt.datetime.fromisoformat(stamp)
    return kube.human_age((now - then).total_seconds())


def pod_row(clock: WallClock) -> Callable[[dict[str, Any]], list[Any]]:
    def row(doc: dict[str, Any]) -> list[Any]:
        reason, ready, total, restarts = kube.pod_status_column(doc)
        return [
            doc["metadata"]["name"],
            f"{ready}/{total}",
            reason,
            str(restarts),
            age(clock, doc["metadata"].get("creationTimestamp")),
            doc["status"].get("podIP") or "<none>",
            doc["spec"].get("nodeName") or "<none>",
            doc["status"].get("nominatedNodeName") or "<none>",
            _readiness_gates(doc),
        ]

    return row


def _readiness_gates(doc: Mapping[str, Any]) -> str:
    """The printer's READINESS GATES: how many of the pod's gates have a True condition."""
    gates = doc["spec"].get("readinessGates") or []
    if not gates:
        return "<none>"
    status = {
        c.get("type"): c.get("status")
        for c in reversed(doc["status"].get("conditions") or [])  # the first of a type counts
        if isinstance(c, Mapping)
    }
    ready = sum(
        1 for g in gates if isinstance(g, Mapping) and status.get(g.get("conditionType")) == "True"
    )
    return f"{ready}/{len(gates)}"


def event_row(clock: WallClock) -> Callable[[dict[str, Any]], list[Any]]:
    def row(doc: dict[str, Any]) -> list[Any]:
        obj = doc["involvedObject"]
        source = doc.get("source") or {}
        return [
            age(clock, doc.get("lastTimestamp")),
            doc["type"],
            doc["reason"],
            f"{obj['kind'].lower()}/{obj['name']}",
            obj.get("fieldPath", ""),
            f"{source.get('component', '')}, {source.get('host', '')}".strip(", "),
            doc["message"],
            age(clock, doc.get("firstTimestamp")),
            doc["count"],
            doc["metadata"]["name"],
        ]

    return row


_ROLE_PREFIX = "node-role.kubernetes.io/"


def node_row(clock: WallClock) -> Callable[[dict[str, Any]], list[Any]]:
    def row(doc: dict[str, Any]) -> list[Any]:
        info = doc["status"]["nodeInfo"]
        # As kubectl's node printer: the Ready condition, then the cordon; the roles from the
        # node-role.kubernetes.io/<role> labels and kubernetes.io/role.
        status = "Ready,SchedulingDisabled" if doc["spec"].get("unschedulable") else "Ready"
        labels = doc["metadata"].get("labels") or {}
        roles = {k.removeprefix(_ROLE_PREFIX) for k in labels if k.startswith(_ROLE_PREFIX)}
        roles |= {labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()
        return [
            doc["metadata"]["name"],
            status,
            ",".join(sorted(r for r in roles if r)) or "<none>",
            age(clock, doc["metadata"]["creationTimestamp"]),
            info["kubeletVersion"],
            "127.0.0.1",
            "<none>",
            info["osImage"],
            info["kernelVersion"],
            info["containerRuntimeVersion"],
        ]

    return row


def secret_row(clock: WallClock) -> Callable[[dict[str, Any]], list[Any]]:
    def row(doc: dict[str, Any]) -> list[Any]:
        return [
            doc["metadata"]["name"],
            doc.get("type", "Opaque"),
            str(len(doc.get("data") or {})),
            age(clock, doc["metadata"]["creationTimestamp"]),
        ]

    return row


def sa_row(clock: WallClock) -> Callable[[dict[str, Any]], list[Any]]:
    def row(doc: dict[str, Any]) -> list[Any]:
        return [
            doc["metadata"]["name"],
            str(len(doc.get("secrets") or [])),
            age(clock, doc["metadata"]["creationTimestamp"]),
        ]

    return row


def ns_row(clock: WallClock) -> Callable[[dict[str, Any]], list[Any]]:
    def row(doc: dict[str, Any]) -> list[Any]:
        return [
            doc["metadata"]["name"],
            "Active",
            age(clock, doc["metadata"]["creationTimestamp"]),
        ]

    return row


def _workload_wide(doc: dict[str, Any]) -> list[Any]:
    """CONTAINERS, IMAGES and SELECTOR of `kubectl get deploy/rs -o wide`."""
    containers = ((doc["spec"].get("template") or {}).get("spec") or {}).get("containers") or []
    return [
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
        selector_string(doc["spec"].get("selector")),
    ]


def deployment_row(clock: WallClock) -> Callable[[dict[str, Any]], list[Any]]:
    def row(doc: dict[str, Any]) -> list[Any]:
        status = doc.get("status") or {}
        return [
            doc["metadata"]["name"],
            f"{status.get('readyReplicas', 0)}/{doc['spec'].get('replicas', 1)}",
            status.get("updatedReplicas", 0),
            status.get("availableReplicas", 0),
            age(clock, doc["metadata"].get("creationTimestamp")),
            *_workload_wide(doc),
        ]

    return row


def replicaset_row(clock: WallClock) -> Callable[[dict[str, Any]], list[Any]]:
    def row(doc: dict[str, Any]) -> list[Any]:
        status = doc.get("status") or {}
        return [
            doc["metadata"]["name"],
            doc["spec"].get("replicas", 1),
            status.get("replicas", 0),
            status.get("readyReplicas", 0),
            age(clock, doc["metadata"].get("creationTimestamp")),
            *_workload_wide(doc),
        ]

    return row
