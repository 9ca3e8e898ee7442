"""Stored API objects: the per-kind tables and the API server's rules for them.

Secrets and service accounts live in `ObjectTable`s written through to the state store; the
functions here are the checks and transformations the API server applies on create and patch
(kind and namespace of the body, names, string maps, immutable identity, docker-config secrets,
merge patches), each failing with the Status a real API server would give.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Mapping
from typing import Any

from kubesim_images.daemon.changefeed import DELETED, ChangeFeed
from kubesim_images.daemon.gojson import go_unmarshal_map_error
from kubesim_images.daemon.kube import (
    ApiError,
    already_exists,
    bad_request,
    invalid,
    not_found,
)
from kubesim_images.errors import ConfigError
from kubesim_images.keyring import Credential, parse_docker_config
from kubesim_images.pod import FieldError
from kubesim_images.state import StateStore

DOCKER_SECRET_KEYS = {
    "kubernetes.io/dockerconfigjson": ".dockerconfigjson",
    "kubernetes.io/dockercfg": ".dockercfg",
}


class ObjectTable(dict[tuple[str, str], dict[str, Any]]):
    """Stored objects of one kind by (namespace, name), written through to the state store."""

    def __init__(
        self,
        kind: str,
        resource: str,
        state: StateStore,
        feed: ChangeFeed,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.resource = resource
        self._state = state
        self._feed = feed  # each committed change, published once

    def require(self, namespace: str, name: str) -> dict[str, Any]:
        doc = self.get((namespace, name))
        if doc is None:
            raise not_found(self.resource, name)
        return doc

    def require_absent(self, namespace: str, name: str) -> None:
        if (namespace, name) in self:
            raise already_exists(self.resource, name)

    def put(self, doc: dict[str, Any]) -> None:
        """Save, then remember: if the database refuses the write, memory is unchanged."""
        namespace, name = object_key(doc)
        with self._state.transaction():
            self._state.put_object(self.kind, namespace, name, doc)
        change = "MODIFIED" if (namespace, name) in self else "ADDED"
        self[(namespace, name)] = doc
        self._feed.publish(self.kind, change, doc)

    def remove(self, namespace: str, name: str) -> dict[str, Any]:
        doc = self.require(namespace, name)
        with self._state.transaction():
            self._state.delete_object(self.kind, doc["metadata"]["uid"])
        del self[(namespace, name)]
        # The deletion is a change of its own: watchers see it at a version of its own.
        version = str(self._feed.next_version())
        self._feed.publish(
            self.kind, DELETED, {**doc, "metadata": {**doc["metadata"], "resourceVersion": version}}
        )
        return doc

    def restore(self) -> None:
        for doc in self._state.objects(self.kind):
            self[object_key(doc)] = doc


def object_key(doc: Mapping[str, Any]) -> tuple[str, str]:
    meta = doc["metadata"]
    return str(meta.get("namespace", "")), str(meta["name"])  # "" for a cluster-scoped kind


def check_replacement(
    meta: Mapping[str, Any], resource: str, name: str, stored_version: str
) -> None:
    """A PUT body names the object of its URL and, when it carries a resourceVersion, the
    stored one: else 409 Conflict, the apiserver's optimistic concurrency."""
    if meta.get("name") != name:
        raise bad_request(
            f"the name of the object ({meta.get('name')}) does not match the name on the "
            f"URL ({name})"
        )
    version = meta.get("resourceVersion")
    if version and version != stored_version:
        raise conflict(resource, name)


def conflict(resource: str, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details={"name": name, "kind": resource},
    )


# Where the apiserver's decoder looks a kind up: its message names it.
_SCHEME = "pkg/api/legacyscheme/scheme.go:30"


def check_kind(body: Mapping[str, Any], kind: str, api_version: str = "v1") -> Mapping[str, Any]:
    """The body is an object of `kind`; an `apiVersion` it gives is the endpoint's, else the
    decoder's 400 (the kind is registered for no other version the daemon serves)."""
    if not isinstance(body, Mapping):
        raise bad_request(f"the request body must be a {kind} object")
    given = body.get("kind")
    if given not in (None, "", kind):
        raise bad_request(f"the body is a {given}, not a {kind}")
    version = body.get("apiVersion")
    if version not in (None, "", api_version):
        raise bad_request(
            f'{kind} in version "{api_version.rsplit("/", 1)[-1]}" cannot be handled as a '
            f'{kind}: no kind "{kind}" is registered for version "{version}" in scheme '
            f'"{_SCHEME}"'
        )
    return body


def body_meta(body: Mapping[str, Any], namespace: str) -> Mapping[str, Any]:
    meta = body.get("metadata") or {}
    if not isinstance(meta, Mapping):
        raise bad_request("metadata must be an object")
    check_string_maps(meta)
    given = meta.get("namespace")
    if given and given != namespace:
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    return meta


def check_string_maps(meta: Mapping[str, Any]) -> None:
    """Labels and annotations decode as string-to-string maps or the body is refused (400)."""
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and not (
            isinstance(value, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            raise bad_request(f"metadata.{field} must be an object of string values")


def drop_empty_maps(meta: dict[str, Any]) -> None:
    """Empty labels and annotations are absent, as the apiserver encodes them (omitempty):
    a patch that only empties an absent map changes nothing."""
    for field in ("labels", "annotations"):
        if meta.get(field) == {}:
            del meta[field]


def keep_created(doc: dict[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """An update never changes creationTimestamp: the apiserver resets it from the stored
    object (so `kubectl apply` of a manifest with `creationTimestamp: null` works twice)."""
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        meta["creationTimestamp"] = before["metadata"]["creationTimestamp"]
    return doc


def check_patched_meta(doc: Mapping[str, Any], before: Mapping[str, Any], resource: str) -> None:
    """A patched object is still the stored one, as the apiserver's patch handler and update
    check it: the same name (400) and namespace (400) as its URL, the same uid (409)."""
    meta = doc.get("metadata")
    if not isinstance(meta, Mapping):
        raise bad_request("metadata must be an object")
    check_string_maps(meta)
    old = before["metadata"]
    if meta.get("name") != old["name"]:
        raise bad_request(
            f"the name of the object ({meta.get('name') or ''}) does not match the name on "
            f"the URL ({old['name']})"
        )
    if meta.get("namespace", "") != old.get("namespace", ""):
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    if meta.get("uid") != old["uid"]:
        raise ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {resource} "{old["name"]}": Precondition '
            f"failed: UID in precondition: {meta.get('uid') or ''}, UID in object meta: "
            f"{old['uid']}",
            details={"name": old["name"], "kind": resource},
        )


def require_name(meta: Mapping[str, Any], kind: str) -> str:
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(
            kind,
            "",
            [
                FieldError(
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name or generateName is required",
                )
            ],
        )
    return name


def secret_data(body: Mapping[str, Any], name: str) -> dict[str, str]:
    for field in ("data", "stringData"):
        if not isinstance(body.get(field) or {}, Mapping):
            raise bad_request(f"{field} must be an object")
    data = dict(body.get("data") or {})
    for key, value in (body.get("stringData") or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    for key, value in data.items():
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise invalid(
                "Secret",
                name,
                [
                    FieldError(
                        f"data[{key}]",
                        "FieldValueInvalid",
                        'Invalid value: "<secret contents redacted>": illegal base64 data',
                    )
                ],
            ) from None
    return data


def validate_secret(doc: Mapping[str, Any]) -> None:
    name = doc["metadata"]["name"]
    key = DOCKER_SECRET_KEYS.get(doc.get("type", ""))
    if key is None:
        return
    if key not in doc["data"]:
        raise invalid(
            "Secret", name, [FieldError(f"data[{key}]", "FieldValueRequired", "Required value")]
        )
    problem = go_unmarshal_map_error(base64.b64decode(doc["data"][key]))
    if problem is not None:
        raise invalid(
            "Secret",
            name,
            [
                FieldError(
                    f"data[{key}]",
                    "FieldValueInvalid",
                    f'Invalid value: "<secret contents redacted>": {problem}',
                )
            ],
        )


def validate_pull_secret_refs(refs: Any, kind: str, name: str) -> None:
    if refs is None:
        return
    if not isinstance(refs, list) or not all(
        isinstance(r, Mapping) and isinstance(r.get("name"), str) and r["name"] for r in refs
    ):
        raise invalid(
            kind,
            name,
            [
                FieldError(
                    "imagePullSecrets",
                    "FieldValueInvalid",
                    "Invalid value: each entry needs a name",
                )
            ],
        )


def secret_credentials(secret: Mapping[str, Any]) -> list[tuple[str, Credential]]:
    key = DOCKER_SECRET_KEYS.get(secret.get("type", ""))
    if key is None or key not in (secret.get("data") or {}):
        return []
    meta = secret["metadata"]
    source = f"secret {meta['namespace']}/{meta['name']}"
    try:
        document = json.loads(base64.b64decode(secret["data"][key]))
        return parse_docker_config(document, source=source)
    except (ValueError, ConfigError):
        return []


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def redact_secret(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Secrets' data is never echoed: keys are kept (kubectl counts them), values emptied.

    `kubectl apply` copies the whole manifest, values included, into the last-applied
    annotation; the API server returns it as it is, this daemon empties its values too (kubectl
    still finds the keys it needs to compute the next apply's deletions).
    """
    out = copy.deepcopy(dict(doc))
    out["data"] = dict.fromkeys(doc.get("data") or {}, "")
    annotations = out.get("metadata", {}).get("annotations") or {}
    if LAST_APPLIED in annotations:
        annotations[LAST_APPLIED] = _redact_applied(annotations[LAST_APPLIED])
    return out


def _redact_applied(text: str) -> str:
    try:
        applied = json.loads(text)
    except ValueError:
        return ""  # not kubectl's JSON: nothing in it can be shown safely
    if not isinstance(applied, dict):
        return ""
    for field in ("data", "stringData"):
        if isinstance(applied.get(field), dict):
            applied[field] = dict.fromkeys(applied[field], "")
        elif field in applied:
            applied[field] = {}
    return json.dumps(applied, separators=(",", ":"))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge reads the same for the fields we patch)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out
