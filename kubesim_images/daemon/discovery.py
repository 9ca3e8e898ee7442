"""Discovery and OpenAPI documents, as kubectl and the clients read them.

kubectl needs `/api`, `/apis` and `/api/v1` to map kinds to resources, and `/openapi/v3` to
learn that the server validates fields itself (`fieldValidation=Strict`), without which
`kubectl create -f` refuses to send anything. `/openapi.json` is our own description of the API
for people and tools (OpenAPI 3.0).
"""

from __future__ import annotations

from typing import Any

from kubesim_images import __version__

KUBE_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "kubesim-images",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_VERBS = ["create", "delete", "get", "list", "patch", "watch"]
RESOURCES: list[dict[str, Any]] = [
    {
        "name": "pods",
        "singularName": "pod",
        "namespaced": True,
        "kind": "Pod",
        "verbs": _VERBS,
        "shortNames": ["po"],
        "categories": ["all"],
    },
    {
        "name": "events",
        "singularName": "event",
        "namespaced": True,
        "kind": "Event",
        "verbs": ["get", "list"],
        "shortNames": ["ev"],
    },
    {
        "name": "nodes",
        "singularName": "node",
        "namespaced": False,
        "kind": "Node",
        "verbs": ["get", "list"],
        "shortNames": ["no"],
    },
    {
        "name": "secrets",
        "singularName": "secret",
        "namespaced": True,
        "kind": "Secret",
        "verbs": ["create", "delete", "get", "list", "patch"],
    },
    {
        "name": "serviceaccounts",
        "singularName": "serviceaccount",
        "namespaced": True,
        "kind": "ServiceAccount",
        "verbs": ["create", "delete", "get", "list", "patch"],
        "shortNames": ["sa"],
    },
    {
        "name": "namespaces",
        "singularName": "namespace",
        "namespaced": False,
        "kind": "Namespace",
        "verbs": ["create", "get", "list"],
        "shortNames": ["ns"],
    },
]


def api_versions(address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


API_GROUPS = {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
API_V1 = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "v1",
    "resources": RESOURCES,
}

# What kubectl reads of /openapi/v3: that each kind's PATCH accepts fieldValidation.
OPENAPI_V3_ROOT = {
    "paths": {"api/v1": {"serverRelativeURL": f"/openapi/v3/api/v1?hash={__version__}"}}
}


def _patch_path(kind: str) -> dict[str, Any]:
    return {
        "patch": {
            "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": kind},
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
            ],
            "responses": {"200": {"description": "OK"}},
        }
    }


OPENAPI_V3_CORE = {
    "openapi": "3.0.0",
    "info": {"title": "Kubernetes (kubesim-images)", "version": "v1.32.4"},
    "paths": {
        "/api/v1/namespaces/{namespace}/pods/{name}": _patch_path("Pod"),
        "/api/v1/namespaces/{namespace}/secrets/{name}": _patch_path("Secret"),
        "/api/v1/namespaces/{namespace}/serviceaccounts/{name}": _patch_path("ServiceAccount"),
        "/api/v1/namespaces/{namespace}/events/{name}": _patch_path("Event"),
        "/api/v1/nodes/{name}": _patch_path("Node"),
        "/api/v1/namespaces/{name}": _patch_path("Namespace"),
    },
}


def _op(summary: str, *, body: bool = False, codes: tuple[int, ...] = (200,)) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            str(c): {"description": "OK" if c < 300 else "Status"} for c in (*codes, 400, 401, 404)
        },
    }
    if body:
        op["requestBody"] = {
            "content": {
                t: {"schema": {"type": "object"}} for t in ("application/json", "application/yaml")
            }
        }
    return op


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.0 description of the daemon's HTTP API."""
    ns = "/api/v1/namespaces/{namespace}"
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("Liveness: always ok while the process serves")},
        "/readyz": {"get": _op("Readiness: ok once state is restored and the node runs")},
        "/metrics": {"get": _op("Prometheus metrics (kubelet names where the kubelet has them)")},
        "/debug/pulls": {"get": _op("Pull queue: in flight with progress, waiting, back-off")},
        "/version": {"get": _op("Kubernetes version document")},
        "/api": {"get": _op("Core API versions")},
        "/apis": {"get": _op("API groups (none besides core)")},
        "/api/v1": {"get": _op("Core v1 resources")},
        f"{ns}/pods": {
            "get": _op("List pods (Table with Accept as=Table; watch=true streams)"),
            "post": _op("Create a pod", body=True, codes=(201,)),
        },
        f"{ns}/pods/{{name}}": {
            "get": _op("Read a pod with its container statuses"),
            "delete": _op("Delete a pod (returns the pod)"),
            "patch": _op("Patch labels/annotations", body=True),
        },
        "/api/v1/pods": {"get": _op("List pods in all namespaces")},
        f"{ns}/secrets": {
            "get": _op("List secrets (values never returned)"),
            "post": _op("Create a secret (JSON, YAML or protobuf)", body=True, codes=(201,)),
        },
        f"{ns}/secrets/{{name}}": {
            "get": _op("Read a secret (values never returned)"),
            "delete": _op("Delete a secret"),
            "patch": _op("Patch a secret", body=True),
        },
        f"{ns}/serviceaccounts": {
            "get": _op("List service accounts"),
            "post": _op("Create a service account", body=True, codes=(201,)),
        },
        f"{ns}/serviceaccounts/{{name}}": {
            "get": _op("Read a service account"),
            "delete": _op("Delete a service account"),
            "patch": _op("Patch (e.g. imagePullSecrets)", body=True),
        },
        f"{ns}/events": {"get": _op("List events (fieldSelector on involvedObject.*)")},
        "/api/v1/events": {"get": _op("List events in all namespaces")},
        "/api/v1/nodes": {"get": _op("List the node")},
        "/api/v1/nodes/{name}": {"get": _op("Read the node (status.images)")},
        "/api/v1/namespaces": {
            "get": _op("List namespaces"),
            "post": _op("Create a namespace", body=True, codes=(201,)),
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "kubesim-images daemon",
            "version": __version__,
            "description": "A simulated kubelet image manager behind a "
            "Kubernetes-shaped API. Errors are Kubernetes Status "
            "objects.",
        },
        "paths": paths,
    }
