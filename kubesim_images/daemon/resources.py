"""The resource table: every kind the daemon serves, described once.

An entry says what the apiserver's discovery, routes, Tables, watches and OpenAPI need to know
about a kind: its names, scope, verbs, printer columns and row builder, selectable fields, how
a client may see an object, and, for a kind the daemon only stores, its `Strategy` (its
validation). `discovery.py`, `api.py` (routes, lists, Tables, watches) and `openapi.py` are
generated from `RESOURCES`; `cluster.py` builds each kind's `Storage` from it. Adding a kind is
one entry here plus its strategy (see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubesim_images.clock import WallClock
from kubesim_images.daemon import kube, rows
from kubesim_images.daemon.objects import redact_secret
from kubesim_images.daemon.storage import Strategy
from kubesim_images.daemon.strategies import SecretStrategy, ServiceAccountStrategy

META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


def _as_stored(doc: dict[str, Any]) -> dict[str, Any]:
    return doc


@dataclass(frozen=True, slots=True)
class Action:
    """A subresource that is not the object: `pods/log`, `pods/exec`.

    Discovery lists it as the apiserver does (its kind, and its group and version when they are
    another group's); its routes are the kind's own (`podtools.py`).
    """

    name: str
    verbs: tuple[str, ...]
    kind: str
    group: str = ""
    version: str = ""

    def discovery(self, plural: str, namespaced: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": f"{plural}/{self.name}",
            "singularName": "",
            "namespaced": namespaced,
        }
        if self.group:
            doc.update(group=self.group, version=self.version)
        doc.update(kind=self.kind, verbs=list(self.verbs))
        return doc


# The pod's subresources beyond `status` and `eviction`, as kube-apiserver v1.32 lists them.
POD_ACTIONS = (
    Action("attach", ("create", "get"), "PodAttachOptions"),
    Action("exec", ("create", "get"), "PodExecOptions"),
    Action("log", ("get",), "Pod"),
    Action("portforward", ("create", "get"), "PodPortForwardOptions"),
)


@dataclass(frozen=True, slots=True)
class Resource:
    """One kind as the API serves it."""

    kind: str
    plural: str
    singular: str
    namespaced: bool
    # As discovery lists them: create delete deletecollection get list patch update watch.
    verbs: tuple[str, ...]
    columns: tuple[kube.Column, ...]
    row: Callable[[WallClock], rows.Row]
    # Beyond metadata.name and metadata.namespace, which every kind selects on.
    fields: frozenset[str] = META_FIELDS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    group: str = ""
    version: str = "v1"
    subresources: tuple[str, ...] = ()
    actions: tuple[Action, ...] = ()
    # The object as a client may see it (a secret's values are never shown).
    view: Callable[[dict[str, Any]], dict[str, Any]] = _as_stored
    # A kind the daemon only stores: its rules. None for kinds with storage of their own
    # (wired by hand in cluster.py).
    strategy: Strategy | None = None
    # What DELETE answers: the object (pods, service accounts) or a Success Status (secrets).
    delete_answers_status: bool = False
    # One line per operation for the daemon's own /openapi.json.
    summaries: Mapping[str, str] = field(default_factory=dict)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_prefix(self) -> str:
        """Where the kind's group version is served: /api/v1, or /apis/<group>/<version>."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection_path(self, namespace: str = "{namespace}") -> str:
        if self.namespaced:
            return f"{self.api_prefix}/namespaces/{namespace}/{self.plural}"
        return f"{self.api_prefix}/{self.plural}"

    def discovery(self) -> dict[str, Any]:
        """The kind's entry in its APIResourceList."""
        doc: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            doc["shortNames"] = list(self.short_names)
        if self.categories:
            doc["categories"] = list(self.categories)
        return doc

    def subresource_discovery(self) -> list[dict[str, Any]]:
        """The entries of its subresources: `<plural>/status` of the kind itself,
        `pods/eviction` of policy/v1 Eviction, and `<plural>/scale` of autoscaling/v1 Scale
        (kubectl scale and drain read the group and version from these entries)."""
        out = []
        for sub in self.subresources:
            doc: dict[str, Any] = {
                "name": f"{self.plural}/{sub}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }
            if sub == "scale":
                doc.update(group="autoscaling", version="v1", kind="Scale")
            elif sub == "eviction":  # what `kubectl drain` looks for before evicting
                doc.update(group="policy", version="v1", kind="Eviction", verbs=["create"])
            out.append(doc)
        out.extend(action.discovery(self.plural, self.namespaced) for action in self.actions)
        return sorted(out, key=lambda doc: str(doc["name"]))


_ALL_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
# A namespaced kind's: DELETE on its collection too (`delete_collection_namespaced_pod`).
_COLLECTION_VERBS = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)

_CORE: tuple[Resource, ...] = (
    Resource(
        kind="Pod",
        plural="pods",
        singular="pod",
        namespaced=True,
        verbs=_COLLECTION_VERBS,
        columns=kube.POD_COLUMNS,
        row=rows.pod_row,
        fields=META_FIELDS | {"spec.nodeName", "status.phase", "spec.serviceAccountName"},
        short_names=("po",),
        categories=("all",),
        subresources=("status", "eviction"),
        actions=POD_ACTIONS,
        summaries={
            "list": "List pods (Table with Accept as=Table; watch=true streams)",
            "create": "Create a pod",
            "get": "Read a pod with its container statuses",
            "delete": "Delete a pod (returns the pod)",
            "patch": "Patch labels/annotations",
        },
    ),
    Resource(
        kind="Event",
        plural="events",
        singular="event",
        namespaced=True,
        verbs=("get", "list", "watch"),
        columns=kube.EVENT_COLUMNS,
        row=rows.event_row,
        fields=META_FIELDS
        | {
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        },
        short_names=("ev",),
        summaries={
            "list": "List events (fieldSelector on involvedObject.*)",
            "get": "Read an event",
        },
    ),
    Resource(
        kind="Node",
        plural="nodes",
        singular="node",
        namespaced=False,
        verbs=("delete", "get", "list", "patch", "update", "watch"),
        columns=kube.NODE_COLUMNS,
        row=rows.node_row,
        short_names=("no",),
        delete_answers_status=True,
        summaries={
            "list": "List the nodes",
            "get": "Read a node (status.images)",
            "patch": "Patch a node's labels, annotations, taints and cordon (spec.unschedulable)",
            "delete": "Delete a node (its kubelet registers it again at once)",
        },
    ),
    Resource(
        kind="Secret",
        plural="secrets",
        singular="secret",
        namespaced=True,
        verbs=_COLLECTION_VERBS,
        columns=kube.SECRET_COLUMNS,
        row=rows.secret_row,
        fields=META_FIELDS | {"type"},
        view=redact_secret,
        strategy=SecretStrategy(),
        delete_answers_status=True,
        summaries={
            "list": "List secrets (values never returned)",
            "create": "Create a secret (JSON, YAML or protobuf)",
            "get": "Read a secret (values never returned)",
            "delete": "Delete a secret",
            "patch": "Patch a secret",
        },
    ),
    Resource(
        kind="ServiceAccount",
        plural="serviceaccounts",
        singular="serviceaccount",
        namespaced=True,
        verbs=_COLLECTION_VERBS,
        columns=kube.SERVICEACCOUNT_COLUMNS,
        row=rows.sa_row,
        short_names=("sa",),
        strategy=ServiceAccountStrategy(),
        summaries={
            "list": "List service accounts",
            "create": "Create a service account",
            "get": "Read a service account",
            "delete": "Delete a service account",
            "patch": "Patch (e.g. imagePullSecrets)",
            "list-all": "List service accounts in all namespaces",
        },
    ),
    Resource(
        kind="Namespace",
        plural="namespaces",
        singular="namespace",
        namespaced=False,
        verbs=_ALL_VERBS,
        columns=kube.NAMESPACE_COLUMNS,
        row=rows.ns_row,
        short_names=("ns",),
        summaries={
            "list": "List namespaces",
            "create": "Create a namespace",
            "get": "Read a namespace",
            "delete": "Delete a namespace (Terminating, then gone with its content)",
            "patch": "Patch a namespace's labels and annotations",
        },
    ),
)

# apps/v1: stored by `apps.WorkloadStorage` and reconciled by the workload controllers
# (kubesim_images/workloads), wired in cluster.py.
_WORKLOAD_SUMMARIES = {
    "list": "List {p} (Table with Accept as=Table; watch=true streams)",
    "create": "Create a {s} (its controller makes the pods)",
    "get": "Read a {s} with its status",
    "delete": "Delete a {s} (what it owns follows, in the background)",
    "patch": "Patch a {s} (kubectl set image, rollout undo)",
}
WORKLOADS: tuple[Resource, ...] = tuple(
    Resource(
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=True,
        group="apps",
        verbs=_COLLECTION_VERBS,
        columns=columns,
        row=row,
        short_names=(short,),
        categories=("all",),
        subresources=("status", "scale"),
        delete_answers_status=True,
        summaries={
            verb: text.format(p=plural, s=kind.lower())
            for verb, text in _WORKLOAD_SUMMARIES.items()
        },
    )
    for kind, plural, short, columns, row in (
        ("Deployment", "deployments", "deploy", kube.DEPLOYMENT_COLUMNS, rows.deployment_row),
        ("ReplicaSet", "replicasets", "rs", kube.REPLICASET_COLUMNS, rows.replicaset_row),
    )
)
RESOURCES: tuple[Resource, ...] = (*_CORE, *WORKLOADS)

BY_KIND: Mapping[str, Resource] = {r.kind: r for r in RESOURCES}
