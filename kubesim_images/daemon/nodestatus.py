"""The Node object a kubelet reports, for the simulated node.

`status.images` is built as the kubelet's node status does it: largest images first, at most
50 (`nodeStatusMaxImages`), each with its repo digests then repo tags, at most 5 names.
"""

from __future__ import annotations

from typing import Any

from kubesim_images.clock import WallClock
from kubesim_images.node import Node


def render_node(
    node: Node, clock: WallClock, uid: str, created_epoch: float, resource_version: int
) -> dict[str, Any]:
    """The Node object: conditions, addresses, capacity, and `status.images` like a kubelet."""
    name = node.name
    images = sorted(node.store.images(), key=lambda r: (-r.size, r.id))[:50]
    created = clock.rfc3339(clock.loop_time(created_epoch))
    heartbeat = clock.rfc3339(clock.now_ns())

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": created,
        }

    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": uid,
            "resourceVersion": str(resource_version),
            "creationTimestamp": created,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "kubesim",
            },
            "annotations": {"kubesim.io/simulated": "true"},
        },
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "capacity": {
                "cpu": "4",
                "memory": "16Gi",
                "pods": "110",
                "ephemeral-storage": "100Gi",
            },
            "allocatable": {
                "cpu": "4",
                "memory": "15Gi",
                "pods": "110",
                "ephemeral-storage": "90Gi",
            },
            "conditions": [
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": uid.replace("-", ""),
                "systemUUID": uid,
                "bootID": uid,
                "kernelVersion": "6.1.0-kubesim",
                "osImage": "kubesim-images simulated node",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "containerd://1.7.22",
                "kubeletVersion": "v1.32.4",
                "kubeProxyVersion": "v1.32.4",
            },
            "images": [
                {"names": (r.repo_digests + r.repo_tags)[:5], "sizeBytes": r.size} for r in images
            ],
        },
    }
