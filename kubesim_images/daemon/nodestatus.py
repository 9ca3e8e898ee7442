"""The Node object a kubelet reports, for the simulated node.

`status.images` is built as the kubelet's node status does it: largest images first, at most
50 (`nodeStatusMaxImages`), each with its repo digests then repo tags, at most 5 names.
`ephemeral-storage` is the node's image filesystem (one filesystem for everything here), its
allocatable part what the default hard eviction threshold `nodefs.available<10%` leaves, and
`DiskPressure` is the eviction manager's verdict on the default `imagefs.available<15%`.

`NodeObject` is one node's storage, `NodeObjects` the kind's (the daemon may simulate many, each
with its pool's labels and platform): a node's resourceVersion is that of its last status
change, one per loop turn in which its images changed (a pull commits its image and the GC
removes others in the same turn), each published once on the change feed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from kubesim_images.clock import WallClock
from kubesim_images.daemon.changefeed import MODIFIED, ChangeFeed
from kubesim_images.daemon.kube import not_found
from kubesim_images.daemon.storage import ReadOnly
from kubesim_images.node import Node
from kubesim_images.snapshot import NodeSnapshot

# The kubelet's default hard eviction thresholds (evictionHard) for the two filesystems.
_NODEFS_AVAILABLE_PERCENT = 10
_IMAGEFS_AVAILABLE_PERCENT = 15


def render_node(
    node: NodeSnapshot,
    clock: WallClock,
    uid: str,
    created_epoch: float,
    resource_version: int,
    *,
    labels: Mapping[str, str] | None = None,
    arch: str = "amd64",
) -> dict[str, Any]:
    """The Node object: conditions, addresses, capacity, and `status.images` like a kubelet;
    `labels` are its pool's, over the kubelet's own well-known ones."""
    name = node.node
    images = sorted(node.images, key=lambda r: (-r.size, r.id))[:50]
    fs = node.disk
    # The eviction manager compares with `<`: pressure once less than 15 % is available.
    pressure = fs.available * 100 < fs.capacity * _IMAGEFS_AVAILABLE_PERCENT
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
                "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch,
                "node.kubernetes.io/instance-type": "kubesim",
                **(labels or {}),
            },
            "annotations": {"kubesim.io/simulated": "true"},
        },
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "capacity": {
                "cpu": "4",
                "memory": "16Gi",
                "pods": "110",
                "ephemeral-storage": _quantity(fs.capacity),
            },
            "allocatable": {
                "cpu": "4",
                "memory": "15Gi",
                "pods": "110",
                "ephemeral-storage": _quantity(
                    fs.capacity - fs.capacity * _NODEFS_AVAILABLE_PERCENT // 100
                ),
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
                    "True" if pressure else "False",
                    "KubeletHasDiskPressure" if pressure else "KubeletHasNoDiskPressure",
                    "kubelet has disk pressure" if pressure else "kubelet has no disk pressure",
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
                "architecture": arch,
                "containerRuntimeVersion": "containerd://1.7.22",
                "kubeletVersion": "v1.32.4",
                "kubeProxyVersion": "v1.32.4",
            },
            "images": [
                {"names": list((r.repo_digests + r.repo_tags)[:5]), "sizeBytes": r.size}
                for r in images
            ],
        },
    }


def _quantity(size: int) -> str:
    """A byte count as the API server canonicalises it: the largest binary suffix that divides
    it exactly (`100Gi`, `27Gi`), else plain bytes."""
    for suffix, scale in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size and size % scale == 0:
            return f"{size // scale}{suffix}"
    return str(size)


class NodeObject(ReadOnly):
    """`Storage` for one Node, and the publisher of its status changes."""

    def __init__(
        self,
        node: Node,
        clock: WallClock,
        feed: ChangeFeed,
        uid: str,
        created_epoch: float,
        *,
        labels: Mapping[str, str] | None = None,
        arch: str = "amd64",
    ) -> None:
        self._node = node
        self._clock = clock
        self._feed = feed
        self.uid = uid
        self.created_epoch = created_epoch
        self.labels = dict(labels or {})
        self._arch = arch
        self._version = feed.version
        self._flush: asyncio.Handle | None = None

    def changed(self) -> None:
        """The node's images changed: a new version at the end of this loop turn."""
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self._publish)

    def _publish(self) -> None:
        self._flush = None
        self._version = self._feed.next_version()
        # Rendered even when nobody watches: a watch resuming from an older version replays it.
        self._feed.publish("Node", MODIFIED, self.render())

    def stop(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    @property
    def name(self) -> str:
        return self._node.name

    def render(self) -> dict[str, Any]:
        return render_node(
            self._node.snapshot(),
            self._clock,
            self.uid,
            self.created_epoch,
            self._version,
            labels=self.labels,
            arch=self._arch,
        )

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        del namespace
        return [self.render()]

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        del namespace
        if name != self._node.name:
            raise not_found("nodes", name)
        return self.render()


class NodeObjects(ReadOnly):
    """`Storage` for the daemon's nodes, in the order the config lists them."""

    def __init__(self, nodes: Sequence[NodeObject]) -> None:
        self.by_name = {node.name: node for node in nodes}

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        del namespace
        return [node.render() for node in self.by_name.values()]

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        del namespace
        node = self.by_name.get(name)
        if node is None:
            raise not_found("nodes", name)
        return node.render()

    def stop(self) -> None:
        for node in self.by_name.values():
            node.stop()
