"""Request bodies as clients send them: JSON, YAML, Kubernetes protobuf, and patches.

Decoding is where hostile input is first met, so every limit lives here: nesting depth, the
number of values once YAML aliases are expanded (a "billion laughs" body is refused, not
expanded), and bodies with no JSON meaning. JSON is strict as the API server's decoder is:
`NaN`, `Infinity` and integers outside int64 are refused, so nothing stored can come back as
invalid JSON. YAML map keys become strings as sigs.k8s.io/yaml makes them (`1:` is `"1"`).
Errors are `ApiError`s the middleware turns into `Status` answers.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from typing import Any

import jsonpatch
import jsonpointer
import yaml
from aiohttp import web

from kubesim_images.daemon.gojson import go_syntax_error, go_type, summarize
from kubesim_images.daemon.kube import ApiError, bad_request
from kubesim_images.daemon.protobuf import ProtobufError, decode

MAX_BODY_DEPTH = 100  # far deeper than any Kubernetes object; deeper bodies would recurse
MAX_BODY_NODES = 500_000  # values in a body, aliases expanded; no real object comes close


# Seconds a client has to send a request body once its head is in (a slow sender holds a
# connection and a buffer; past this it is answered 408).
BODY_TIMEOUT: web.AppKey[float] = web.AppKey("body_timeout", float)
MAX_YAML_ALIASES = 1000  # expanding aliases is how a small YAML body becomes a huge one
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
APPLY_PATCH_YAML = "application/apply-patch+yaml"


class BodySyntaxError(ApiError):
    """A JSON body that does not parse, in the apiserver's words: Go's syntax error, after
    `couldn't get version/kind; json parse error:` for an object (a patch's is Go's alone)."""

    def __init__(self, go_error: str, raw: bytes, method: str) -> None:
        prefix = "" if method == "PATCH" else "couldn't get version/kind; json parse error: "
        super().__init__(400, "BadRequest", prefix + go_error)
        self.raw = raw

    def unrecognized(self, kind: str) -> ApiError:
        """The create or update handler's `transformDecodeError`, naming the kind it wanted."""
        return bad_request(
            f"the object provided is unrecognized (must be of type {kind}): {self.message} "
            f"({summarize(self.raw)})"
        )


def _json_int(text: str) -> int:
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"the number {text[:40]} overflows int64")
    return value


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} overflows float64")
    return value


def _json_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def loads_json(text: str) -> Any:
    """JSON as Go's decoder reads it: no NaN or Infinity, no number a Go int64/float64 lacks."""
    return json.loads(
        text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant
    )


class _YamlLoader(yaml.SafeLoader):
    """YAML as kubectl reads it (sigs.k8s.io/yaml): an unquoted date stays a string."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} aliases")
        return super().compose_node(parent, index)


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_yaml(raw: bytes | str) -> Any:
    doc = yaml.load(raw, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
    _check_depth(doc)  # before anything expands shared aliases ("billion laughs")
    return _jsonable(doc)


def _yaml_key(key: Any) -> str:
    """A map key as sigs.k8s.io/yaml turns it into a JSON key."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        if math.isnan(key):
            return ".nan"
        if math.isinf(key):
            return ".inf" if key > 0 else "-.inf"
        return f"{key:g}"
    raise bad_request(
        "error converting YAML to JSON: yaml: invalid map key: a map key must be a string, "
        "number or bool"
    )


def _jsonable(value: Any) -> Any:
    """The YAML document as JSON would carry it; what JSON lacks (!!binary, NaN) is refused.

    Recursion is bounded: `_check_depth` has already refused bodies nested deeper than
    MAX_BODY_DEPTH.
    """
    if isinstance(value, Mapping):
        return {_yaml_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise bad_request(
                f"the YAML body has no JSON representation: the number {str(value)[:40]} "
                "overflows int64"
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise bad_request(
                f"the YAML body has no JSON representation: unsupported value: {value}"
            )
        return value
    tag = "!!binary" if isinstance(value, bytes) else "!!set" if isinstance(value, set) else "tag"
    raise bad_request(f"error converting YAML to JSON: unsupported value: {tag}")


def _too_deep() -> ApiError:
    return bad_request(f"the request body is nested deeper than {MAX_BODY_DEPTH} levels")


def _check_depth(doc: Any) -> Any:
    """Refuse bodies nested too deep or, once YAML aliases are expanded, too large."""
    stack = [(doc, 1)]
    visited = 0
    while stack:
        value, depth = stack.pop()
        visited += 1
        if visited > MAX_BODY_NODES:
            raise ApiError(
                413,
                "RequestEntityTooLarge",
                f"the request body has more than {MAX_BODY_NODES} values",
            )
        if depth > MAX_BODY_DEPTH:
            raise _too_deep()
        if isinstance(value, Mapping):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return doc


# Set by the field-validation middleware: the body with the fields its schema lacks dropped.
DECODED_BODY: web.RequestKey[Any] = web.RequestKey("decoded_body", object)


async def read_body(request: web.Request) -> Any:
    """The decoded body; bodies too deeply nested to process are refused, not recursed into."""
    if DECODED_BODY in request:
        return request[DECODED_BODY]
    return _check_depth(await _decode_body(request))


async def _decode_body(request: web.Request) -> Any:
    try:
        async with asyncio.timeout(request.app.get(BODY_TIMEOUT, 60.0)):
            raw = await request.read()
    except TimeoutError:
        error = ApiError(408, "Timeout", "the request body was not received in time")
        raise error from None
    if not raw.strip():
        raise bad_request("the request body is empty")
    ctype = request.content_type
    if ctype == "application/vnd.kubernetes.protobuf":
        try:
            return decode(raw)
        except ProtobufError as exc:
            raise ApiError(415, "UnsupportedMediaType", str(exc)) from None
    try:
        if ctype in {"application/yaml", "application/x-yaml", "text/yaml", APPLY_PATCH_YAML}:
            # PyYAML is pure Python (~3 s for a 1 MiB body): in a thread, the loop keeps serving.
            return await asyncio.to_thread(_load_yaml, raw)
        if ctype in {
            "",
            "application/octet-stream",
            "application/json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
            "application/json-patch+json",
        }:
            # Go's decoder reads invalid UTF-8 as U+FFFD, so the apiserver takes such a body.
            text = raw.decode("utf-8", errors="replace")
            try:
                return loads_json(text)
            except json.JSONDecodeError as exc:
                raise BodySyntaxError(go_syntax_error(text, exc), raw, request.method) from None
            except ValueError as exc:  # our own checks (NaN, int64), already in Go's words
                raise BodySyntaxError(str(exc), raw, request.method) from None
    except RecursionError:  # the decoder's own limit, below the apiserver's (10000 levels)
        raise _too_deep() from None
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"the request body is not valid {ctype or 'JSON'}: {exc}") from None
    raise ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml, application/vnd.kubernetes.protobuf",
    )


async def read_object(request: web.Request) -> Mapping[str, Any]:
    body = await read_body(request)
    if not isinstance(body, Mapping):
        raise bad_request("the request body must be a JSON or YAML object")
    return body


async def read_patch(request: web.Request, current: Mapping[str, Any]) -> Mapping[str, Any]:
    """The patch as a merge patch; JSON patches (RFC 6902) are applied to `current` first."""
    body = await read_body(request)
    if request.content_type == "application/json-patch+json":
        if not isinstance(body, list):  # jsonpatch.DecodePatch's json.Unmarshal
            raise bad_request(
                f"json: cannot unmarshal {go_type(body)} into Go value of type jsonpatch.Patch"
            )
        return {"__replace__": apply_json_patch(current, body)}
    if not isinstance(body, Mapping):
        if request.content_type == "application/merge-patch+json":
            raise bad_request("Invalid JSON Patch")  # jsonpatch.ErrBadJSONPatch
        raise bad_request(  # the strategic merge patch's json.Unmarshal into a map
            f"json: cannot unmarshal {go_type(body)} into Go value of type "
            "map[string]interface {}"
        )
    if "__replace__" in body:  # our marker for a JSON patch's result, never a client's field
        raise bad_request('unknown field "__replace__"')
    return body


# The apiserver's bound on a JSON patch's operations (maxJSONPatchOperations).
MAX_JSON_PATCH_OPERATIONS = 10000


def apply_json_patch(doc: Mapping[str, Any], ops: list[Any]) -> dict[str, Any]:
    """RFC 6902 (add, remove, replace, move, copy, test) applied to `doc`, by `jsonpatch`.

    Whatever fails (a missing path, a failed `test`, an unknown or malformed operation) is the
    apiserver's answer to its JSON patch library's error: 422 Invalid with the generic text.
    """
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise ApiError(
            413,
            "RequestEntityTooLarge",
            f"Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}",
        )
    if any(isinstance(op, Mapping) and op.get("path") == "" for op in ops):
        raise _json_patch_failed()  # the whole object is never replaced by a JSON patch
    try:
        out = jsonpatch.apply_patch(dict(doc), ops)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError):
        raise _json_patch_failed() from None
    if not isinstance(out, dict):
        raise _json_patch_failed()
    return out


def _json_patch_failed() -> ApiError:
    return ApiError(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        details={},
    )


def applied_object(body: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The object a server-side apply creates: the applied configuration, named by the URL."""
    meta = body.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    given = meta.get("name")
    if given not in (None, "", name):
        raise bad_request(
            f"the name of the object ({given}) does not match the name on the URL ({name})"
        )
    return {**body, "metadata": {**meta, "name": name}}
