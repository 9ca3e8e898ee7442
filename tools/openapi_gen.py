"""Generate kubesim_images/data/openapi-{core,apps}-v1.json.gz: the schemas the daemon serves.

Run once, by hand, when the served kinds or the Kubernetes version change:

    pip install 'kubernetes-validate>=1.37,<1.38'     # or: pip install -e '.[openapi]'
    python tools/openapi_gen.py

The source is the Kubernetes v1.32.0 API definitions as shipped by the `kubernetes-validate`
package (its `kubernetes-json-schema/v1.32.0-local/_definitions.json`, Apache-2.0, derived from
the Kubernetes OpenAPI document, Apache-2.0). It is the one source on the package registries
that has the v1.32 API (the daemon reports v1.32.4) with every description the apiserver
serves: the type descriptions and those written beside a `$ref`, which the `kubernetes`
Python client's models lack. It is JSON Schema, so this script turns it back into the shape
of the kube-apiserver's `/openapi/v3/api/v1` document: `#/components/schemas/` names,
references as `allOf: [{$ref}]` beside their description, no `null` types, array items and
map values of structs defaulting to `{}`, and no `enum` on `apiVersion`/`kind` (the JSON
Schema converter adds those; the apiserver does not). What it cannot restore: the
`Possible enum values` paragraphs and `enum` lists of fields such as `imagePullPolicy`, and
the `default` of non-pointer struct fields, which the source does not carry.

Only the closure of what the daemon serves is kept (Pod, Secret, ServiceAccount, Event, Node,
Namespace, their lists, Status and the request types; in the apps file Deployment, ReplicaSet,
their lists and autoscaling/v1 Scale, less what the core file already holds), so the daemon
never needs the network
or the `kubernetes` packages at run time; the document is loaded lazily by
`kubesim_images.daemon.openapi`.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

KUBE_VERSION = "v1.32.0"
SOURCE_PACKAGE = "kubernetes-validate"
SOURCE_PATH = f"kubernetes-json-schema/{KUBE_VERSION}-local/_definitions.json"
DATA = Path(__file__).resolve().parent.parent / "kubesim_images/data"
OUTPUT = DATA / "openapi-core-v1.json.gz"
APPS_OUTPUT = DATA / "openapi-apps-v1.json.gz"
PREFIX = "#/components/schemas/"
CORE = "io.k8s.api.core.v1."
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
ROOTS = [
    *(
        f"{CORE}{kind}{suffix}"
        for kind in ("Pod", "Secret", "ServiceAccount", "Event", "Node", "Namespace")
        for suffix in ("", "List")
    ),
    f"{META}Status",
    f"{META}DeleteOptions",
    f"{META}WatchEvent",
    f"{META}Patch",
    f"{META}APIResourceList",
]
APPS_ROOTS = [
    *(
        f"io.k8s.api.apps.v1.{kind}{suffix}"
        for kind in ("Deployment", "ReplicaSet")
        for suffix in ("", "List")
    ),
    "io.k8s.api.autoscaling.v1.Scale",
]
# The source gives these as JSON Schema unions without descriptions; the apiserver's v3
# document has them as below (kube-openapi's OpenAPIDefinition of each type).
OVERRIDES: dict[str, dict[str, Any]] = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "description": "IntOrString is a type that can hold an int32 or a string.  When used in "
        "JSON or YAML marshalling and unmarshalling, it produces or consumes the inner type.  "
        "This allows you to have, for example, a JSON field that can accept a name or number.",
        "format": "int-or-string",
        "type": "string",
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "description": "Quantity is a fixed-point representation of a number. It provides "
        "convenient marshaling/unmarshaling in JSON and YAML, in addition to String() and "
        "AsInt64() accessors.",
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
}


def source_file() -> Path:
    spec = importlib.util.find_spec("kubernetes_validate")  # found, never imported
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"{SOURCE_PACKAGE} is not installed: pip install '{SOURCE_PACKAGE}>=1.37,<1.38'")
    return Path(next(iter(spec.submodule_search_locations))) / SOURCE_PATH


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def closure(defs: dict[str, Any], roots: list[str]) -> list[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        stack: list[Any] = [defs[name]]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if isinstance(node.get("$ref"), str):
                    todo.append(ref_name(node["$ref"]))
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return sorted(seen)


def is_struct(defs: dict[str, Any], name: str) -> bool:
    return "properties" in defs[name]


def plain_type(value: Any) -> Any:
    if isinstance(value, list):
        kinds = [t for t in value if t != "null"]
        return kinds[0] if len(kinds) == 1 else kinds
    return value


def convert(defs: dict[str, Any], schema: dict[str, Any], *, element: bool = False) -> Any:
    """One property (or array item / map value) in the apiserver's v3 shape."""
    if "$ref" in schema:
        name = ref_name(schema["$ref"])
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        if element and is_struct(defs, name):
            siblings["default"] = {}
        if not siblings:
            return {"$ref": PREFIX + name}
        return {"allOf": [{"$ref": PREFIX + name}], **dict(sorted(siblings.items()))}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            out[key] = plain_type(value)
        elif key in {"items", "additionalProperties"} and isinstance(value, dict):
            out[key] = convert(defs, value, element=True)
        elif key == "oneOf":
            out[key] = [convert(defs, v) for v in value]
        else:
            out[key] = value
    if element and out.get("type") == "string" and "format" not in out:
        out["default"] = ""  # Go's []string / map[string]string elements are never nil
    return dict(sorted(out.items()))


def convert_type(defs: dict[str, Any], name: str) -> dict[str, Any]:
    if name in OVERRIDES:
        return OVERRIDES[name]
    schema = defs[name]
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            props = {}
            for prop, given in value.items():
                sub = dict(given)
                if prop in {"apiVersion", "kind"} and "x-kubernetes-group-version-kind" in schema:
                    sub.pop("enum", None)  # the converter's addition, not the apiserver's
                props[prop] = convert(defs, sub)
            out[key] = dict(sorted(props.items()))
        elif key == "type":
            out[key] = plain_type(value)
        elif key in {"$schema", "$id"}:
            continue
        else:
            out[key] = convert(defs, value) if key == "items" else value
    return dict(sorted(out.items()))


def generate(
    source: Path, roots: list[str] = ROOTS, besides: list[str] | None = None, what: str = "core/v1"
) -> dict[str, Any]:
    """The schemas of the closure of `roots`, less the closure of `besides`."""
    defs = json.loads(source.read_text(encoding="utf-8"))["$defs"]
    kept = set(closure(defs, besides)) if besides else set()
    schemas = {name: convert_type(defs, name) for name in closure(defs, roots) if name not in kept}
    return {
        "x-kubesim-provenance": (
            f"Kubernetes {KUBE_VERSION} {what} API schemas (Apache-2.0, The Kubernetes Authors), "
            f"from {SOURCE_PACKAGE} 1.37.0's {SOURCE_PATH} (Apache-2.0), reshaped as the "
            "kube-apiserver's /openapi/v3 components by tools/openapi_gen.py"
        ),
        "schemas": schemas,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help=f"{SOURCE_PATH} (default: installed package)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--apps-output", type=Path, default=APPS_OUTPUT)
    args = parser.parse_args()
    source = args.source or source_file()
    core = generate(source)
    apps = generate(source, APPS_ROOTS, ROOTS, "apps/v1 and autoscaling/v1")
    for output, doc in ((args.output, core), (args.apps_output, apps)):
        raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        # mtime=0: the same input gives the same bytes, so a re-run shows no diff.
        output.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
        print(f"{output}: {len(doc['schemas'])} schemas, {len(raw)} bytes before gzip")


if __name__ == "__main__":
    main()
