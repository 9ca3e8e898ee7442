"""The node leases in `kube-node-lease`, as `kubectl describe node` reads them.

A v1.32 kubelet keeps a `coordination.k8s.io/v1` Lease named after its node, owned by the Node,
and renews it every quarter of `nodeLeaseDurationSeconds` (40 s): the node controller reads it
as the heartbeat. `kubectl describe node` GETs it for its `Lease:` section; without it, every
describe said `Failed to get lease`. The simulated kubelets never miss a renewal, so a lease is
rendered on demand: its last renewal is the latest 10 s step from the node's registration.
Only GET is served and discovered; leases are not stored, listed or watched.
"""

from __future__ import annotations

import uuid
from typing import Any

from kubesim_images.clock import NS_PER_SECOND, WallClock
from kubesim_images.daemon.kube import ApiError
from kubesim_images.daemon.nodestatus import NodeObjects

GROUP = "coordination.k8s.io"
VERSION = "v1"
NAMESPACE = "kube-node-lease"
PATH = f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/leases/{{name}}"
DURATION_SECONDS = 40  # the kubelet's nodeLeaseDurationSeconds default
_RENEW_NS = DURATION_SECONDS * NS_PER_SECOND // 4  # the kubelet renews at a quarter of it
# Its entry in the group version's APIResourceList: the one verb served.
DISCOVERY: dict[str, Any] = {
    "name": "leases",
    "singularName": "lease",
    "namespaced": True,
    "kind": "Lease",
    "verbs": ["get"],
}


def not_found(name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'leases.{GROUP} "{name}" not found',
        details={"name": name, "group": GROUP, "kind": "leases"},
    )


def _micro_time(clock: WallClock, loop_ns: int) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, as a lease's times are written."""
    return clock.to_datetime(loop_ns).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_lease(
    nodes: NodeObjects, clock: WallClock, namespace: str, name: str, resource_version: int
) -> dict[str, Any]:
    """The Lease `name` in `namespace`: a node's, or the apiserver's 404."""
    node = nodes.by_name.get(name) if namespace == NAMESPACE else None
    if node is None:
        raise not_found(name)
    created = clock.loop_time(node.created_epoch)
    now = clock.now_ns()
    renewed = now - (now - created) % _RENEW_NS if now >= created else now
    return {
        "kind": "Lease",
        "apiVersion": f"{GROUP}/{VERSION}",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            # Stable across reads, new with the node's registration (a new Node uid).
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{NAMESPACE}/{node.uid}")),
            "resourceVersion": str(resource_version),
            "creationTimestamp": clock.rfc3339(created),
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node.uid}
            ],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": DURATION_SECONDS,
            "renewTime": _micro_time(clock, renewed),
        },
    }
