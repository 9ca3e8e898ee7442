"""The Node object a kubelet reports, for the simulated node.

`status.images` is built as the kubelet's node status does it: largest images first, at most
50 (`nodeStatusMaxImages`), each with its repo digests then repo tags, at most 5 names.
`ephemeral-storage` is the node's image filesystem (one filesystem for everything here), its
allocatable part what the default hard eviction threshold `nodefs.available<10%` leaves, and
`DiskPressure` is the eviction manager's verdict on the default `imagefs.available<15%`.

`NodeObject` is one node's storage, `NodeObjects` the kind's (the daemon may simulate many, each
with its pool's labels and platform): a node's resourceVersion is that of its last change, one
per loop turn in which its images changed (a pull commits its image and the GC removes others
in the same turn), each published once on the change feed. A client may change its labels,
annotations, taints and cordon (`spec.unschedulable`, shown with the
`node.kubernetes.io/unschedulable:NoSchedule` taint the node lifecycle controller adds): its
`Registration`, saved, and told to the scheduler's part (`on_update`). A deleted node registers
again at once (a v1.32 kubelet would only when restarted, kubernetes#71398: a simulated node that
never came back would be of no use).
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubesim_images.clock import WallClock
from kubesim_images.daemon.changefeed import ADDED, DELETED, MODIFIED, ChangeFeed
from kubesim_images.daemon.kube import bad_request, not_found
from kubesim_images.daemon.objects import (
    body_meta,
    check_kind,
    check_patched_meta,
    check_replacement,
    keep_created,
    merge_patch,
)
from kubesim_images.daemon.options import NO_OPTIONS, DeleteOptions, check_preconditions
from kubesim_images.daemon.podupdate import SpecMerge
from kubesim_images.daemon.storage import not_allowed
from kubesim_images.daemon.validation import metadata_causes, require_valid
from kubesim_images.logging import get_logger
from kubesim_images.node import Node
from kubesim_images.placement import UNSCHEDULABLE_TAINT, Taint
from kubesim_images.pod import FieldError
from kubesim_images.snapshot import NodeSnapshot

_log = get_logger()

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
    registration: Registration | None = None,
) -> dict[str, Any]:
    """The Node object: conditions, addresses, capacity, and `status.images` like a kubelet;
    `labels` are its pool's, over the kubelet's own well-known ones; `registration` (what a
    client may have changed since: labels, annotations, cordon, taints) replaces them."""
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

    if registration is None:
        registration = Registration.of_kubelet(uid, created_epoch, name, arch, labels or {})
    meta: dict[str, Any] = {
        "name": name,
        "uid": uid,
        "resourceVersion": str(resource_version),
        "creationTimestamp": created,
        "labels": dict(registration.labels),
    }
    if registration.annotations:
        meta["annotations"] = dict(registration.annotations)
    spec: dict[str, Any] = {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]}
    taints = [dict(t) for t in registration.taints]
    if registration.unschedulable:
        spec["unschedulable"] = True
        # The node lifecycle controller's taint of a cordoned node (TaintNodeByCondition).
        taints.append({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"})
    if taints:
        spec["taints"] = taints
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": meta,
        "spec": spec,
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


@dataclass(frozen=True, slots=True)
class Registration:
    """What a node's Node object holds that is not its kubelet's status: its identity, and what
    a client may change (`kubectl label`, `annotate`, `cordon`, `taint`). Saved, so a restart
    keeps it; a deleted node registers again with its kubelet's own."""

    uid: str
    created_epoch: float
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    unschedulable: bool = False
    # The taints a client set; a cordoned node's own is added when rendered.
    taints: tuple[Mapping[str, Any], ...] = ()

    @staticmethod
    def of_kubelet(
        uid: str, created_epoch: float, name: str, arch: str, labels: Mapping[str, str]
    ) -> Registration:
        """As the kubelet registers: its well-known labels, then its `--node-labels` (the
        pool's)."""
        return Registration(
            uid,
            created_epoch,
            {**kubelet_labels(name, arch), **labels},
            {"kubesim.io/simulated": "true"},
        )

    def filtering_taints(self) -> tuple[Taint, ...]:
        """The taints a client set, as the scheduler's TaintToleration filter reads them."""
        return tuple(
            Taint(str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
            for t in self.taints
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "uid": self.uid,
                "created": self.created_epoch,
                "labels": dict(self.labels),
                "annotations": dict(self.annotations),
                "unschedulable": self.unschedulable,
                "taints": [dict(t) for t in self.taints],
            }
        )

    @staticmethod
    def from_json(text: str, name: str, arch: str) -> Registration:
        doc = json.loads(text)
        # A restarted kubelet sets its well-known labels again (updateDefaultLabels).
        return Registration(
            doc["uid"],
            float(doc["created"]),
            {**doc["labels"], **kubelet_labels(name, arch)},
            doc["annotations"],
            bool(doc["unschedulable"]),
            tuple(doc["taints"]),
        )


def kubelet_labels(name: str, arch: str) -> dict[str, str]:
    return {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
        "node.kubernetes.io/instance-type": "kubesim",
    }


_TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")


def _registration_of(doc: Mapping[str, Any], before: Registration, name: str) -> Registration:
    """What an updated Node object changes, checked as the apiserver's node validation does;
    the status is the kubelet's (the node strategy keeps it), other spec fields are refused."""
    meta = doc["metadata"]
    spec = doc.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise bad_request("spec must be an object")
    causes: list[FieldError] = list(metadata_causes(meta))
    cidrs = spec.get("podCIDRs")
    if cidrs is not None and cidrs != ["10.244.0.0/24"]:
        causes.append(
            FieldError(
                "spec.podCIDRs",
                "FieldValueForbidden",
                'Forbidden: node updates may not change podCIDR except from "" to valid',
            )
        )
    unschedulable = spec.get("unschedulable") or False
    if not isinstance(unschedulable, bool):
        raise bad_request("spec.unschedulable must be a boolean")
    taints: list[Mapping[str, Any]] = []
    raw = spec.get("taints") or []
    if not isinstance(raw, list):
        raise bad_request("spec.taints must be an array")
    for i, taint in enumerate(raw):
        if not isinstance(taint, Mapping):
            raise bad_request(f"spec.taints[{i}] must be an object")
        effect = taint.get("effect")
        if effect not in _TAINT_EFFECTS:
            supported = ", ".join(f'"{e}"' for e in _TAINT_EFFECTS)
            causes.append(
                FieldError(
                    f"spec.taints[{i}].effect",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{effect}": supported values: {supported}',
                )
            )
        if taint.get("key") == UNSCHEDULABLE_TAINT and effect == "NoSchedule":
            continue  # the cordon's own: follows spec.unschedulable
        taints.append(dict(taint))
    require_valid("Node", name, causes)
    return Registration(
        before.uid,
        before.created_epoch,
        dict(meta.get("labels") or {}),
        dict(meta.get("annotations") or {}),
        unschedulable,
        tuple(taints),
    )


class NodeObject:
    """`Storage` for one Node, and the publisher of its changes: the kubelet's status, and
    a client's updates of its labels, annotations, cordon and taints."""

    def __init__(
        self,
        node: Node,
        clock: WallClock,
        feed: ChangeFeed,
        registration: Registration,
        *,
        pool_labels: Mapping[str, str] | None = None,
        arch: str = "amd64",
        save: Callable[[Registration], None] = lambda _registration: None,
    ) -> None:
        self._node = node
        self._clock = clock
        self._feed = feed
        self.registration = registration
        self._pool_labels = dict(pool_labels or {})
        self._arch = arch
        self._save = save
        self._version = feed.version
        self._flush: asyncio.Handle | None = None
        # Told of a client's change (labels, cordon, a new registration): the scheduler's part.
        self.on_update: Callable[[NodeObject], None] = lambda _node: None

    @property
    def uid(self) -> str:
        return self.registration.uid

    @property
    def created_epoch(self) -> float:
        return self.registration.created_epoch

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

    def render(self, registration: Registration | None = None) -> dict[str, Any]:
        registration = registration or self.registration
        return render_node(
            self._node.snapshot(),
            self._clock,
            registration.uid,
            registration.created_epoch,
            self._version,
            arch=self._arch,
            registration=registration,
        )

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        del namespace
        return [self.render()]

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        del namespace
        if name != self._node.name:
            raise not_found("nodes", name)
        return self.render()

    # -- a client's writes ----------------------------------------------------------------------
    def create(
        self, namespace: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        del namespace, body, dry_run
        raise not_allowed("create")

    def patch(
        self,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        dry_run: bool = False,
        merge: SpecMerge = SpecMerge.JSON,
    ) -> dict[str, Any]:
        """`kubectl label/annotate/cordon/uncordon/taint`: merge, strategic merge (a Node's
        lists have no merge keys) or JSON patches of metadata and spec."""
        del namespace, merge
        before = self.get("", name)
        if "__replace__" in patch:  # a JSON patch: the whole object as it would become
            merged = copy.deepcopy(dict(patch["__replace__"]))
        else:
            merged = merge_patch(before, patch)
        return self._update(keep_created(merged, before), before, dry_run=dry_run)

    def replace(
        self, namespace: str, name: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """PUT (`kubectl replace`): a stale resourceVersion is a 409 Conflict."""
        del namespace
        body = check_kind(body, "Node")
        before = self.get("", name)
        meta = body_meta(body, "")
        check_replacement(meta, "nodes", name, before["metadata"]["resourceVersion"])
        doc = {**body, "metadata": {**meta, "uid": meta.get("uid") or self.uid}}
        return self._update(keep_created(doc, before), before, dry_run=dry_run)

    def _update(
        self, doc: dict[str, Any], before: dict[str, Any], *, dry_run: bool
    ) -> dict[str, Any]:
        check_patched_meta(doc, before, "nodes")
        registration = _registration_of(doc, self.registration, self.name)
        if registration == self.registration:
            return before  # a no-op keeps its resourceVersion and sends no event
        if dry_run:
            return self.render(registration)
        self._save(registration)
        self.registration = registration
        self._version = self._feed.next_version()
        rendered = self.render()
        self._feed.publish("Node", MODIFIED, rendered)
        _log.info("node_updated", node=self.name, unschedulable=registration.unschedulable)
        self.on_update(self)
        return rendered

    async def delete(
        self,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        options: DeleteOptions = NO_OPTIONS,
    ) -> dict[str, Any]:
        """The object is deleted, then registered again at once, as its kubelet registers
        it: a new uid and creationTimestamp, its pool's labels, uncordoned. Its pods stay
        bound and running (the pod GC takes pods only from a node gone for 40 s)."""
        del namespace
        before = self.get("", name)
        check_preconditions(before, options, "nodes")
        if dry_run:
            return before
        gone = {
            **before,
            "metadata": {**before["metadata"], "resourceVersion": str(self._feed.next_version())},
        }
        self._feed.publish("Node", DELETED, gone)
        registration = Registration.of_kubelet(
            str(uuid.uuid4()),
            self._clock.epoch(self._clock.now_ns()),
            self.name,
            self._arch,
            self._pool_labels,
        )
        self._save(registration)
        self.registration = registration
        self._version = self._feed.next_version()
        self._feed.publish("Node", ADDED, self.render())
        _log.info("node_registered", node=self.name, uid=registration.uid)
        self.on_update(self)
        return gone


class NodeObjects:
    """`Storage` for the daemon's nodes, in the order the config lists them."""

    def __init__(self, nodes: Sequence[NodeObject]) -> None:
        self.by_name = {node.name: node for node in nodes}

    def _node(self, name: str) -> NodeObject:
        node = self.by_name.get(name)
        if node is None:
            raise not_found("nodes", name)
        return node

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        del namespace
        return [node.render() for node in self.by_name.values()]

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        del namespace
        return self._node(name).render()

    def create(
        self, namespace: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        del namespace, body, dry_run
        raise not_allowed("create")

    def patch(
        self,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        dry_run: bool = False,
        merge: SpecMerge = SpecMerge.JSON,
    ) -> dict[str, Any]:
        return self._node(name).patch(namespace, name, patch, dry_run=dry_run, merge=merge)

    def replace(
        self, namespace: str, name: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        return self._node(name).replace(namespace, name, body, dry_run=dry_run)

    async def delete(
        self,
        namespace: str,
        name: str,
        *,
        dry_run: bool = False,
        options: DeleteOptions = NO_OPTIONS,
    ) -> dict[str, Any]:
        return await self._node(name).delete(namespace, name, dry_run=dry_run, options=options)

    def stop(self) -> None:
        for node in self.by_name.values():
            node.stop()
