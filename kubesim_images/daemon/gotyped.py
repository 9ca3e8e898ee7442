"""A JSON value decoded into the Go type its OpenAPI schema describes, and encoded back.

A written status is stored as JSON, but the apiserver decodes it into Go structs first: a value
of the wrong JSON type is refused (400, encoding/json's text), a malformed time too, and a
field that Go always encodes (not `omitempty`: the schema's `required`) comes back with its zero
value. Without this, `{"containerStatuses": [{"name": "c"}]}` would be stored as written, and
every client that decodes pods into its types (the `kubernetes` Python client's list, which
refuses a ContainerStatus without `image`) would break on it. Only what the schemas say is
checked: no field is added that is not required, unknown fields are the field validation's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from kubesim_images.daemon import gojson, openapi
from kubesim_images.daemon.kube import ApiError, bad_request

_TYPES = {"string": str, "boolean": bool, "array": list, "object": Mapping}


def _resolve(schema: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The component a property refers to (`$ref` or `allOf: [{$ref}]`), with its Go name."""
    name = ""
    for _ in range(8):
        ref = schema.get("$ref")
        if ref is None and len(schema.get("allOf", ())) == 1:
            ref = schema["allOf"][0].get("$ref")
        if not isinstance(ref, str):
            break
        name = ref.rsplit("/", 1)[-1]
        schema = openapi.schemas()[name]
    return name, schema


def _go_type(name: str, schema: Mapping[str, Any]) -> str:
    if name:
        parts = name.split(".")
        return f"{parts[-2]}.{parts[-1]}"  # io.k8s.api.core.v1.ContainerStatus: v1.ContainerStatus
    kind = schema.get("type")
    if kind == "integer":
        return str(schema.get("format") or "int64")
    if kind == "number":
        return "float64"
    if kind == "boolean":
        return "bool"
    if kind == "array":
        item_name, item = _resolve(schema.get("items") or {})
        return "[]" + _go_type(item_name, item)
    if kind == "object":
        return "map[string]" + _go_type(*_resolve(schema.get("additionalProperties") or {}))
    return "string"


def _fits(value: Any, kind: str | None) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    expected = _TYPES.get(kind or "")
    return expected is None or isinstance(value, expected)


def _zero(schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "string":
        return "" if schema.get("format") != "date-time" else None
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    return None  # a nil slice, map or pointer


class Decoder:
    """Decodes values of one kind's objects; a mismatch is refused in its name."""

    def __init__(self, kind: str) -> None:
        self._kind = kind

    def _refusal(self, value: Any, struct: str, path: str, go_type: str) -> ApiError:
        shown = gojson.go_type(value)
        if isinstance(value, float) and go_type.startswith("int"):
            shown = f"number {value}"  # a fraction for an integer: Go names the number
        return bad_request(
            f'{self._kind} in version "v1" cannot be handled as a {self._kind}: json: cannot '
            f"unmarshal {shown} into Go struct field {struct}.{path} of type {go_type}"
        )

    def decode(self, value: Any, schema_name: str, path: str) -> Any:
        """`value` (at JSON `path`, dotted, no indices) as the schema `schema_name` decodes."""
        return self._object(value, schema_name, openapi.schemas()[schema_name], path)

    def _object(self, value: Any, name: str, schema: Mapping[str, Any], path: str) -> Any:
        props = schema.get("properties")
        if value is None or not isinstance(value, Mapping) or not isinstance(props, Mapping):
            return value
        struct = name.rsplit(".", 1)[-1]
        out = dict(value)
        for key, sub in value.items():
            if key in props and sub is not None:
                out[key] = self._value(sub, props[key], struct, f"{path}.{key}")
        for key in schema.get("required") or ():
            if key in props and key not in out:
                out[key] = _zero(_resolve(props[key])[1])
        return out

    def _value(self, value: Any, prop: Mapping[str, Any], struct: str, path: str) -> Any:
        name, schema = _resolve(prop)
        kind = schema.get("type")
        if kind is None and isinstance(schema.get("properties"), Mapping):
            kind = "object"
        if not _fits(value, kind) or (kind == "integer" and isinstance(value, float)):
            raise self._refusal(value, struct, path, _go_type(name, schema))
        if schema.get("format") == "date-time" and isinstance(value, str):
            _check_time(self._kind, value)
        if kind == "array":
            items = schema.get("items") or {}
            return [None if v is None else self._value(v, items, struct, path) for v in value]
        if kind == "object" and name:
            return self._object(value, name, schema, path)
        return value


def time_error(text: str) -> str | None:
    """Why metav1.Time does not decode `text` (RFC 3339, Go's time.RFC3339 layout), in Go's
    words; None when it does."""
    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        ok = len(text) >= 20 and text[10] in "Tt"
    except ValueError:
        ok = False
    if ok:
        return None
    return f'parsing time "{text}" as "2006-01-02T15:04:05Z07:00": cannot parse "{text}" as "2006"'


def _check_time(kind: str, text: str) -> None:
    error = time_error(text)
    if error is not None:
        raise bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: {error}')
