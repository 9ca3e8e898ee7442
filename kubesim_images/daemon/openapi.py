"""The OpenAPI documents: `/openapi/v3/api/v1` as the kube-apiserver serves it, and `/openapi.json`.

kubectl reads `/openapi/v3/api/v1` for three things: `kubectl explain` walks its
`components.schemas` (found by `x-kubernetes-group-version-kind`), `kubectl create/apply`
checks that each kind's PATCH takes `fieldValidation` before leaving validation to the server,
and `--validate=strict` falls back to the schemas. The schemas are the Kubernetes v1.32 core/v1
types, generated once by `tools/openapi_gen.py` into `kubesim_images/data/` (see its provenance
note) and loaded on first use, so a daemon that nobody asks for OpenAPI never reads them.

The paths are built here from the daemon's own resource list, so they name what is served.
Every kind's item path declares PATCH with `fieldValidation` as the apiserver does, because
kubectl decides from it whether the server validates fields. `/openapi.json` is the daemon's
own OpenAPI 3 description (health, metrics, debug endpoints and the API) whose request and
response bodies reference the same schemas, with every error a `Status`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import re
from importlib import resources
from typing import Any

from kubesim_images import __version__
from kubesim_images.daemon.discovery import KUBE_VERSION, RESOURCES
from kubesim_images.daemon.resources import RESOURCES as RESOURCE_TABLE
from kubesim_images.daemon.resources import Resource

DATA_FILE = "openapi-core-v1.json.gz"
PREFIX = "#/components/schemas/"
CORE = "io.k8s.api.core.v1."
STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
MEDIA_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


@functools.cache
def _data() -> dict[str, Any]:
    raw = (resources.files("kubesim_images") / "data" / DATA_FILE).read_bytes()
    doc: dict[str, Any] = json.loads(gzip.decompress(raw))
    return doc


def schemas() -> dict[str, Any]:
    """Every schema by its apiserver name (`io.k8s.api.core.v1.Pod`); shared, do not mutate."""
    found: dict[str, Any] = _data()["schemas"]
    return found


def provenance() -> str:
    return str(_data()["x-kubesim-provenance"])


def kind_schema_name(kind: str) -> str:
    return STATUS if kind == "Status" else CORE + kind


def _ref(name: str) -> dict[str, str]:
    return {"$ref": PREFIX + name}


def _content(name: str, types: tuple[str, ...] = MEDIA_TYPES) -> dict[str, Any]:
    return {t: {"schema": _ref(name)} for t in types}


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": kind, "uniqueItems": True},
    }


_PRETTY = _query("pretty", "If 'true', then the output is pretty printed.")
_DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be persisted.")
_FIELD_MANAGER = _query("fieldManager", "The name of the actor or entity making these changes.")
_FIELD_VALIDATION = _query(
    "fieldValidation",
    "fieldValidation instructs the server on how to handle objects in the request "
    "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: "
    "This will ignore any unknown fields that are silently dropped from the object, and will "
    "ignore all but the last duplicate field that the decoder encounters. - Warn: This will "
    "send a warning via the standard warning response header for each unknown field that is "
    "dropped from the object, and for each duplicate field that is encountered. The request "
    "will still succeed if there are no other errors, and will only persist the last of any "
    "duplicate fields. This is the default. - Strict: This will fail the request with a "
    "BadRequest error if any unknown fields would be dropped from the object, or if any "
    "duplicate fields are present. The error returned from the server will contain all "
    "unknown and duplicate fields encountered.",
)
_LIST_PARAMS = [
    _query("fieldSelector", "A selector to restrict the list of returned objects by fields."),
    _query("labelSelector", "A selector to restrict the list of returned objects by labels."),
    _query("resourceVersion", "Where a watch starts; 0 or absent sends the current objects."),
    _query("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _query("watch", "Watch for changes to the described resources.", "boolean"),
]
_WRITE_PARAMS = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]


def _gvk(kind: str) -> dict[str, str]:
    return {"group": "", "kind": kind, "version": "v1"}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "uniqueItems": True},
    }


def _kube_op(
    action: str, verb: str, kind: str, scope: str, response: str, code: str = "200"
) -> dict[str, Any]:
    """One operation as the apiserver documents it (operationId, GVK, action, bodies)."""
    operation_id = (
        f"listCoreV1{kind}ForAllNamespaces"
        if scope == "AllNamespaces"
        else f"{action}CoreV1{scope}{kind}"
    )
    op: dict[str, Any] = {
        "description": f"{action} {'the specified ' if verb != 'list' else 'objects of kind '}"
        f"{kind}",
        "operationId": operation_id,
        "tags": ["core_v1"],
        "parameters": [_PRETTY],
        "responses": {
            code: {"description": "OK", "content": _content(kind_schema_name(response))},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": _gvk(kind),
    }
    if verb in {"post", "put", "patch"}:
        op["parameters"] = [_PRETTY, *_WRITE_PARAMS]
        op["requestBody"] = {
            "required": True,
            "content": _content(
                "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
                if verb == "patch"
                else kind_schema_name(response),
                PATCH_TYPES if verb == "patch" else MEDIA_TYPES,
            ),
        }
    elif verb == "list":
        op["parameters"] = [_PRETTY, *_LIST_PARAMS]
    elif verb == "delete":
        op["parameters"] = [_PRETTY, _DRY_RUN]
    return op


def _core_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for res in RESOURCES:
        kind, plural, verbs = res["kind"], res["name"], set(res["verbs"])
        if res["namespaced"]:
            base, scope = f"/api/v1/namespaces/{{namespace}}/{plural}", "Namespaced"
            ns_param = [_path_param("namespace", "object name and auth scope")]
            paths[f"/api/v1/{plural}"] = {
                "get": _kube_op("list", "list", kind, "AllNamespaces", kind + "List")
            }
        else:
            base, scope, ns_param = f"/api/v1/{plural}", "", []
        collection: dict[str, Any] = {"parameters": ns_param}
        if "list" in verbs:
            collection["get"] = _kube_op("list", "list", kind, scope, kind + "List")
        if "create" in verbs:
            collection["post"] = _kube_op("create", "post", kind, scope, kind, "201")
        item: dict[str, Any] = {
            "parameters": [*ns_param, _path_param("name", f"name of the {kind}")],
            "get": _kube_op("read", "get", kind, scope, kind),
            # Declared for every kind, as the apiserver does: kubectl reads this operation to
            # learn that the server validates fields itself.
            "patch": _kube_op("patch", "patch", kind, scope, kind),
        }
        if "delete" in verbs:
            item["delete"] = _kube_op("delete", "delete", kind, scope, kind)
        if "update" in verbs:
            item["put"] = _kube_op("replace", "put", kind, scope, kind)
        paths[base] = collection
        paths[f"{base}/{{name}}"] = item
    return paths


@functools.cache
def core_v1_document() -> dict[str, Any]:
    """`/openapi/v3/api/v1`: paths for the kinds served and the schemas they use."""
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]},
        "paths": _core_paths(),
        "components": {"schemas": schemas()},
    }


@functools.cache
def core_v1_document_bytes() -> bytes:
    return json.dumps(core_v1_document()).encode()


@functools.cache
def daemon_document_bytes() -> bytes:
    return json.dumps(daemon_document()).encode()


@functools.cache
def v3_root() -> dict[str, Any]:
    """`/openapi/v3`: where the core document is; its hash changes whenever the document does
    (kubectl caches documents on disk by this URL)."""
    digest = hashlib.sha256(core_v1_document_bytes()).hexdigest()[:32].upper()
    return {"paths": {"api/v1": {"serverRelativeURL": f"/openapi/v3/api/v1?hash={digest}"}}}


# -- /openapi.json --------------------------------------------------------------------------
_ERROR_CODES = ("400", "401", "404", "409", "413", "415", "422", "500")
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_ANY_JSON = {"application/json": {"schema": {"type": "object"}}}


def _op(
    summary: str,
    *,
    response: str | None = None,
    body: str | None = None,
    code: str = "200",
    content: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An operation whose bodies are the named schemas and whose errors are `Status`es."""
    ok = content if response is None else {"application/json": {"schema": _ref(response)}}
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {code: {"description": "OK", "content": ok or _ANY_JSON}},
    }
    for err in _ERROR_CODES:
        op["responses"][err] = {
            "description": "Status",
            "content": {"application/json": {"schema": _ref(STATUS)}},
        }
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": _content(body, MEDIA_TYPES[:2])}
        op.setdefault("parameters", []).extend(_WRITE_PARAMS)
    return op


def _patch(summary: str, schema: str) -> dict[str, Any]:
    op = _op(summary, response=schema)
    op["requestBody"] = {
        "required": True,
        "content": {t: {"schema": {"type": "object"}} for t in PATCH_TYPES[1:3]}
        | {PATCH_TYPES[0]: {"schema": {"type": "array", "items": {"type": "object"}}}},
    }
    op["parameters"] = list(_WRITE_PARAMS)
    return op


def _schema_name(res: Resource, suffix: str = "") -> str:
    return f"io.k8s.api.{res.group or 'core'}.{res.version}.{res.kind}{suffix}"


def _resource_paths(lists: list[dict[str, Any]]) -> dict[str, Any]:
    """The operations of every kind of the resource table, for the verbs it declares."""
    paths: dict[str, Any] = {}
    for res in RESOURCE_TABLE:
        verbs, said = set(res.verbs), res.summaries
        schema, listed = _schema_name(res), _schema_name(res, "List")
        collection: dict[str, Any] = {}
        if "list" in verbs:
            collection["get"] = _op(said["list"], response=listed, params=lists)
        if "create" in verbs:
            collection["post"] = _op(said["create"], response=schema, body=schema, code="201")
        item: dict[str, Any] = {}
        if "get" in verbs:
            item["get"] = _op(said["get"], response=schema)
        if "delete" in verbs:
            item["delete"] = _op(
                said["delete"], response=STATUS if res.delete_answers_status else schema
            )
        if "patch" in verbs:
            item["patch"] = _patch(said["patch"], schema)
        paths[res.collection_path()] = collection
        paths[f"{res.collection_path()}/{{name}}"] = item
        if res.namespaced and "list" in verbs:
            everywhere = said.get("list-all", f"List {res.plural} in all namespaces")
            paths[f"{res.api_prefix}/{res.plural}"] = {
                "get": _op(everywhere, response=listed, params=lists)
            }
    return paths


@functools.cache
def daemon_document() -> dict[str, Any]:
    """OpenAPI 3.0 description of the daemon's HTTP API, bodies typed by the core schemas."""
    # The daemon takes fractional timeoutSeconds (a watch of 0.3 s); its own document says so.
    lists = [
        _query("timeoutSeconds", p["description"], "number") if p["name"] == "timeoutSeconds" else p
        for p in _LIST_PARAMS
    ]
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("Liveness: always ok while the process serves", content=_TEXT)},
        "/readyz": {"get": _op("Readiness: ok once state is restored", content=_TEXT)},
        "/metrics": {"get": _op("Prometheus metrics (kubelet names)", content=_TEXT)},
        "/debug/pulls": {"get": _op("Pull queue: in flight with progress, waiting, back-off")},
        "/debug/gc": {
            "get": _op("Image GC: policy, image filesystem, totals, the last runs"),
            "post": _op("Run image GC now; answers as GET does, the new run first"),
        },
        "/debug/catalogue": {
            "get": _op("The simulated registry's images, as `kubesim-images catalogue -o json`")
        },
        "/version": {"get": _op("Kubernetes version document")},
        "/api": {"get": _op("Core API versions")},
        "/apis": {"get": _op("API groups (none besides core)")},
        "/api/v1": {
            "get": _op(
                "Core v1 resources", response="io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList"
            )
        },
        "/openapi/v3": {"get": _op("OpenAPI v3 discovery")},
        "/openapi/v3/api/v1": {"get": _op("OpenAPI v3 document of core/v1 (kubectl explain)")},
    }
    paths.update(_resource_paths(lists))
    for path, operations in paths.items():
        names = re.findall(r"{(\w+)}", path)
        if names:
            operations["parameters"] = [_path_param(n, f"the object's {n}") for n in names]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "kubesim-images daemon",
            "version": __version__,
            "description": "A simulated kubelet image manager behind a Kubernetes-shaped "
            "API. Errors are Kubernetes Status objects. Schemas: " + provenance() + ".",
        },
        "paths": paths,
        "components": {"schemas": schemas()},
    }
