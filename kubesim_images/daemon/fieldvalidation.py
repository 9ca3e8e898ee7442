"""Server-side field validation: `fieldValidation=Strict|Warn|Ignore` on create, update and patch.

The apiserver decodes a write strictly and reports every field the kind's schema does not
declare and every field written twice: `Strict` refuses the request (400, `Pod in version "v1"
cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].x"`),
`Warn` (the default, as in Kubernetes >= 1.27) accepts it and says so in `Warning: 299 - "..."`
response headers, which kubectl prints, and `Ignore` says nothing. kubectl sends `Strict`
unless told `--validate=false`, so a typo such as `imagePullPolicyy` is refused, not silently
dropped.

Which fields exist comes from the core/v1 schemas of `openapi.py`: objects with `properties`
are closed; maps (`additionalProperties`), `x-kubernetes-preserve-unknown-fields` and
schema-less objects (`FieldsV1`, `RawExtension`) take anything. Duplicates are found in the
raw body (JSON object pairs, or YAML mapping nodes with their line numbers), because a decoded
dict has already kept only the last. A server-side apply (`application/apply-patch+yaml`)
builds a typed object, so there an undeclared field is always an error, with the structured-
merge-diff text (`.spec.containers[name="app"].x: field not declared in schema`), answered 400
where the v1.32 apiserver answers 500 (kubernetes/kubernetes#139253).

The middleware runs after auth and before the handler. It decodes a JSON or YAML body once
more to see its duplicates; protobuf bodies have no unknown fields to find. Unknown fields are
dropped from what is stored, as the apiserver drops them (Warn and Ignore): the handler then
reads the pruned body the middleware leaves under `bodies.DECODED_BODY`. JSON patches
(RFC 6902) are checked but not pruned.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from kubesim_images.daemon import openapi
from kubesim_images.daemon.bodies import DECODED_BODY, BodySyntaxError, read_body
from kubesim_images.daemon.kube import ApiError, bad_request, invalid
from kubesim_images.daemon.resources import RESOURCES
from kubesim_images.pod import FieldError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STRICT, WARN, IGNORE = "Strict", "Warn", "Ignore"
DIRECTIVES = ("", IGNORE, STRICT, WARN)
# A body may hold thousands of unknown fields; the answer names the first ones only, so its
# headers and message stay small.
MAX_REPORTED = 100
KIND_BY_PLURAL = {r.plural: r.kind for r in RESOURCES}
JSON_TYPES = frozenset(
    {
        "",
        "application/json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
        "application/octet-stream",
    }
)
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml"})
APPLY_PATCH = "application/apply-patch+yaml"
SMP = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
JSON_PATCH_KEYS = frozenset({"op", "path", "value", "from"})


class Pairs(list[tuple[str, Any]]):
    """A JSON object as written: its pairs in order, duplicates kept."""


Path = tuple[str | int, ...]  # field names and list indices from the object's root


def dotted(at: Path) -> str:
    """A path as the strict decoder writes it: `spec.containers[0].image`."""
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass(slots=True)
class Findings:
    """What a strict decoder would complain about, in the order it meets it."""

    problems: list[str] = field(default_factory=list)
    unknown_paths: list[Path] = field(default_factory=list)

    def unknown(self, at: Path) -> None:
        self.unknown_paths.append(at)
        self.problems.append(f'unknown field "{dotted(at)}"')

    def duplicate(self, at: Path) -> None:
        self.problems.append(f'duplicate field "{dotted(at)}"')


def directive(request: web.Request) -> str:
    """The request's directive; absent means Warn. Other values are refused as the apiserver
    validates Create/Update/PatchOptions."""
    value = request.query.get("fieldValidation", "")
    if value not in DIRECTIVES:
        options = {"POST": "CreateOptions", "PUT": "UpdateOptions"}.get(
            request.method, "PatchOptions"
        )
        supported = ", ".join(f'"{d}"' for d in DIRECTIVES)
        raise invalid(
            f"{options}.meta.k8s.io",
            "",
            [
                FieldError(
                    "fieldValidation",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{value}": supported values: {supported}',
                )
            ],
        )
    return value or WARN


# -- walking a value against a schema -----------------------------------------------------------
def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema a property stands for: `$ref` and `allOf: [{$ref}]` lead to a component."""
    for _ in range(8):  # references never chain deeper; the bound guards a malformed document
        ref = schema.get("$ref")
        if ref is None and len(schema.get("allOf", ())) == 1:
            ref = schema["allOf"][0].get("$ref")
        if not isinstance(ref, str):
            return schema
        schema = openapi.schemas()[ref.rsplit("/", 1)[-1]]
    return schema


def _items(value: Any) -> Iterator[tuple[str, Any]]:
    return iter(value) if isinstance(value, Pairs) else iter(value.items())


def walk(value: Any, schema: dict[str, Any], at: Path, out: Findings, *, smp: bool) -> None:
    """Record the unknown and duplicate fields of `value` under `schema`, depth first.

    Recursion is bounded: bodies nested deeper than bodies.MAX_BODY_DEPTH were refused first.
    """
    resolved = _resolve(schema)
    if resolved.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict | Pairs):
        props = resolved.get("properties")
        values = resolved.get("additionalProperties")
        if props is None and not isinstance(values, dict):
            return  # a schema-less object (FieldsV1, RawExtension): anything goes
        seen: set[str] = set()
        for key, sub in _items(value):
            here = (*at, key)
            if smp and str(key).startswith("$"):
                continue  # strategic-merge directives ($patch, $setElementOrder/..., ...)
            if props is not None and key not in props:
                if key not in seen:  # unknown and duplicated is reported once, as unknown
                    out.unknown(here)
                seen.add(key)
                continue
            if key in seen:
                out.duplicate(here)
            seen.add(key)
            walk(sub, props[key] if props is not None else values or {}, here, out, smp=smp)
    elif isinstance(value, list):
        items = resolved.get("items")
        if isinstance(items, dict):
            for index, sub in enumerate(value):
                walk(sub, items, (*at, index), out, smp=smp)


def prune(value: Any, schema: dict[str, Any], *, smp: bool) -> Any:
    """`value` without the fields `schema` does not declare, as the apiserver stores it."""
    resolved = _resolve(schema)
    if resolved.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if isinstance(value, dict):
        props = resolved.get("properties")
        values = resolved.get("additionalProperties")
        if props is None and not isinstance(values, dict):
            return value
        out = {}
        for key, sub in value.items():
            if smp and key.startswith("$"):
                out[key] = sub
            elif props is None:
                out[key] = prune(sub, values or {}, smp=smp)
            elif key in props:
                out[key] = prune(sub, props[key], smp=smp)
        return out
    if isinstance(value, list) and isinstance(resolved.get("items"), dict):
        return [prune(sub, resolved["items"], smp=smp) for sub in value]
    return value


def _pairs(raw: bytes) -> Any:
    return json.loads(raw, object_pairs_hook=Pairs)


def _yaml_duplicates(raw: bytes) -> list[str]:
    """`line N: key "k" already set in map` for each key a YAML mapping repeats."""
    problems: list[str] = []
    root = yaml.compose(raw, Loader=yaml.SafeLoader)
    stack = [root]
    visited: set[int] = set()  # aliases share nodes: each is walked once, so a bomb stays small
    while stack:
        node = stack.pop()
        if node is None or id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = getattr(key_node, "value", None)
                if isinstance(key, str):  # a mapping or sequence as a key is refused elsewhere
                    if key in keys:
                        line = key_node.start_mark.line + 1
                        problems.append(f'line {line}: key "{key}" already set in map')
                    keys.add(key)
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
    return sorted(problems, key=lambda p: int(p.split(":", 1)[0].removeprefix("line ")))


def _json_patch(ops: Any, schema: dict[str, Any], out: Findings) -> None:
    """Each `add`/`replace` value checked where its path puts it; unknown op fields reported."""
    for op in ops if isinstance(ops, list) else ():
        if not isinstance(op, Pairs):
            continue
        seen: set[str] = set()
        for key, _ in op:
            if key not in JSON_PATCH_KEYS:
                out.problems.append(f'json patch unknown field "{key}"')
            elif key in seen:
                out.problems.append(f'json patch duplicate field "{key}"')
            seen.add(key)
        fields = dict(op)
        if fields.get("op") not in {"add", "replace"} or not isinstance(fields.get("path"), str):
            continue
        parts = [p.replace("~1", "/").replace("~0", "~") for p in fields["path"].split("/")[1:]]
        where: dict[str, Any] = schema
        path: Path = ()
        for part in parts:
            resolved = _resolve(where)
            props, items = resolved.get("properties"), resolved.get("items")
            if isinstance(items, dict):
                index: str | int = int(part) if part.isdecimal() else part
                where, path = items, (*path, index)
            elif props is not None and part in props:
                where, path = props[part], (*path, part)
            elif props is not None:
                out.unknown((*path, part))
                break
            else:
                break  # a map or a schema-less object: any key is fine
        else:
            walk(fields.get("value"), where, path, out, smp=False)


def _smd_path(doc: Any, schema: dict[str, Any], at: Path) -> str:
    """A path as structured-merge-diff writes it: `.spec.containers[name="app"].x`, items of
    lists keyed by `x-kubernetes-list-map-keys` named by their keys."""
    out, value, where = "", doc, schema
    for part in at:
        resolved = _resolve(where)
        if isinstance(part, int):
            keys = where.get("x-kubernetes-list-map-keys") or resolved.get(
                "x-kubernetes-list-map-keys"
            )
            value = value[part] if isinstance(value, list) and part < len(value) else None
            if keys and isinstance(value, dict):
                out += "[" + ",".join(f"{k}={json.dumps(value.get(k))}" for k in keys) + "]"
            else:
                out += f"[{part}]"
            where = resolved.get("items") or {}
        else:
            out += f".{part}"
            value = value.get(part) if isinstance(value, dict) else None
            where = (resolved.get("properties") or {}).get(part) or {}
    return out


# -- the middleware -----------------------------------------------------------------------------
def _kind(request: web.Request) -> str | None:
    route = request.match_info.route.resource
    if route is None:
        return None
    parts = route.canonical.split("/")
    # A collection (…/<plural>), an object (…/<plural>/{name}) or its status; any other
    # subresource is validated by its own handler if it has one. Not "any plural on the path":
    # /api/v1/namespaces/{namespace}/configmaps/{name} is no Namespace.
    plural = parts[-2] if parts[-1] == "{name}" else parts[-1]
    if parts[-2:] == ["{name}", "status"]:  # a status write is decoded as the whole object
        plural = parts[-3]
    kind = KIND_BY_PLURAL.get(plural)
    if kind is None or openapi.kind_schema_name(kind) not in openapi.schemas():
        return None  # no schema to validate against (a kind without one in the data file)
    return str(kind)


def _quote(text: str) -> str:
    """The apiserver's quoted warning text (`"` and `\\` escaped); control and non-ASCII
    characters a client put in a field name are escaped too, so a header stays one line."""
    return json.dumps(text)


async def _findings(request: web.Request, kind: str) -> tuple[Findings, Any]:
    """The problems in the body, and the body as decoded (for the apply-patch paths)."""
    body = await read_body(request)  # the handler's own limits and errors come first
    schema = openapi.schemas()[openapi.kind_schema_name(kind)]
    out = Findings()
    ctype = request.content_type
    raw = await request.read()  # cached by aiohttp: no second read from the socket
    if ctype == JSON_PATCH:
        _json_patch(_pairs(raw), schema, out)
    elif ctype in JSON_TYPES:
        walk(_pairs(raw), schema, (), out, smp=ctype == SMP)
    elif ctype in YAML_TYPES or ctype == APPLY_PATCH:
        out.problems.extend(await asyncio.to_thread(_yaml_duplicates, raw))  # pure-Python YAML
        walk(body, schema, (), out, smp=False)
    return out, body


def _refuse(request: web.Request, kind: str, problems: list[str]) -> ApiError:
    detail = "strict decoding error: " + ", ".join(problems[:MAX_REPORTED])
    if request.method == "PATCH":
        return bad_request(detail)
    return bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: {detail}')


def _group_version(kind: str) -> str:
    """As apimachinery prints a GroupVersionKind's group and version (`/v1` for the core)."""
    return f"{openapi.gvk(kind)['group']}/v1"


def _typed_patch_error(request: web.Request, kind: str, body: Any, paths: list[Path]) -> ApiError:
    schema = openapi.schemas()[openapi.kind_schema_name(kind)]
    errors = [f"{_smd_path(body, schema, p)}: field not declared in schema" for p in paths]
    namespace = request.match_info.get("namespace", "")
    name = request.match_info.get("name", "")
    reported = errors[0] if len(errors) == 1 else "\n  ".join(["errors:", *errors[:MAX_REPORTED]])
    return bad_request(
        f"failed to create typed patch object ({namespace}/{name}; {_group_version(kind)}, "
        f"Kind={kind}): {reported}"
    )


def field_validation_middleware() -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in {"POST", "PUT", "PATCH"}:
            return await handler(request)
        kind = _kind(request)
        if kind is None:
            return await handler(request)
        mode = directive(request)
        apply = request.content_type == APPLY_PATCH
        try:
            found, body = await _findings(request, kind)
        except BodySyntaxError as exc:
            raise exc if request.method == "PATCH" else exc.unrecognized(kind) from None
        except (ValueError, yaml.YAMLError, RecursionError):
            return await handler(request)  # malformed: the handler answers as it always has
        if apply and found.unknown_paths:
            raise _typed_patch_error(request, kind, body, found.unknown_paths)
        if apply:
            found.problems = [p for p in found.problems if not p.startswith("unknown field")]
        if found.problems and mode == STRICT:
            raise _refuse(request, kind, found.problems)
        if found.unknown_paths and isinstance(body, dict):
            # Unknown fields are dropped, not stored: the handler decodes this body instead.
            schema = openapi.schemas()[openapi.kind_schema_name(kind)]
            request[DECODED_BODY] = prune(body, schema, smp=request.content_type == SMP)
        response = await handler(request)
        if mode == WARN:
            for problem in found.problems[:MAX_REPORTED]:
                response.headers.add("Warning", f"299 - {_quote(problem)}")
        return response

    return middleware
