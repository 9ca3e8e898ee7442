"""Decoding the Kubernetes protobuf bodies kubectl sends for typed commands (`create`, `drain`).

`kubectl create secret docker-registry` and `kubectl create serviceaccount` POST
`application/vnd.kubernetes.protobuf` and never fall back to JSON, so the daemon reads that
format: the `k8s\\0` magic, then a `runtime.Unknown` envelope (TypeMeta, raw object bytes) whose
object is decoded with the field numbers of the generated.proto files for the few kinds we
accept. Anything else is refused with a clear 415.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

MAGIC = b"k8s\x00"

# field number -> (json name, type, repeated); type is a scalar name, a message name, or
# ("map", key type, value type).
_Spec = dict[int, tuple[str, Any, bool]]
_SCHEMAS: dict[str, _Spec] = {
    "TypeMeta": {1: ("apiVersion", "str", False), 2: ("kind", "str", False)},
    "ObjectMeta": {
        1: ("name", "str", False),
        2: ("generateName", "str", False),
        3: ("namespace", "str", False),
        5: ("uid", "str", False),
        6: ("resourceVersion", "str", False),
        7: ("generation", "int", False),
        8: ("creationTimestamp", "time", False),
        11: ("labels", ("map", "str", "str"), False),
        12: ("annotations", ("map", "str", "str"), False),
        13: ("ownerReferences", "OwnerReference", True),
        14: ("finalizers", "str", True),
    },
    "ObjectReference": {
        1: ("kind", "str", False),
        2: ("namespace", "str", False),
        3: ("name", "str", False),
        4: ("uid", "str", False),
        5: ("apiVersion", "str", False),
        6: ("resourceVersion", "str", False),
        7: ("fieldPath", "str", False),
    },
    "LocalObjectReference": {1: ("name", "str", False)},
    "Secret": {
        1: ("metadata", "ObjectMeta", False),
        2: ("data", ("map", "str", "bytes"), False),
        3: ("type", "str", False),
        4: ("stringData", ("map", "str", "str"), False),
        5: ("immutable", "bool", False),
    },
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta", False),
        2: ("secrets", "ObjectReference", True),
        3: ("imagePullSecrets", "LocalObjectReference", True),
        4: ("automountServiceAccountToken", "bool", False),
    },
    "NamespaceSpec": {1: ("finalizers", "str", True)},
    # apps/v1, for `kubectl create deployment`: what its typed Deployment carries (fields the
    # simulation has no use for, such as probes and volumes, are skipped).
    "OwnerReference": {
        1: ("kind", "str", False),
        3: ("name", "str", False),
        4: ("uid", "str", False),
        5: ("apiVersion", "str", False),
        6: ("controller", "bool", False),
        7: ("blockOwnerDeletion", "bool", False),
    },
    "LabelSelectorRequirement": {
        1: ("key", "str", False),
        2: ("operator", "str", False),
        3: ("values", "str", True),
    },
    "LabelSelector": {
        1: ("matchLabels", ("map", "str", "str"), False),
        2: ("matchExpressions", "LabelSelectorRequirement", True),
    },
    "EnvVar": {1: ("name", "str", False), 2: ("value", "str", False)},
    "ContainerPort": {
        1: ("name", "str", False),
        2: ("hostPort", "int", False),
        3: ("containerPort", "int", False),
        4: ("protocol", "str", False),
        5: ("hostIP", "str", False),
    },
    "ResourceRequirements": {
        1: ("limits", ("map", "str", "quantity"), False),
        2: ("requests", ("map", "str", "quantity"), False),
    },
    "Container": {
        1: ("name", "str", False),
        2: ("image", "str", False),
        3: ("command", "str", True),
        4: ("args", "str", True),
        5: ("workingDir", "str", False),
        6: ("ports", "ContainerPort", True),
        7: ("env", "EnvVar", True),
        8: ("resources", "ResourceRequirements", False),
        13: ("terminationMessagePath", "str", False),
        14: ("imagePullPolicy", "str", False),
        20: ("terminationMessagePolicy", "str", False),
    },
    "PodSpec": {
        2: ("containers", "Container", True),
        3: ("restartPolicy", "str", False),
        4: ("terminationGracePeriodSeconds", "int", False),
        6: ("dnsPolicy", "str", False),
        7: ("nodeSelector", ("map", "str", "str"), False),
        8: ("serviceAccountName", "str", False),
        15: ("imagePullSecrets", "LocalObjectReference", True),
        19: ("schedulerName", "str", False),
        20: ("initContainers", "Container", True),
    },
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "PodSpec", False)},
    "RollingUpdateDeployment": {
        1: ("maxUnavailable", "intorstr", False),
        2: ("maxSurge", "intorstr", False),
    },
    "DeploymentStrategy": {
        1: ("type", "str", False),
        2: ("rollingUpdate", "RollingUpdateDeployment", False),
    },
    "DeploymentSpec": {
        1: ("replicas", "int", False),
        2: ("selector", "LabelSelector", False),
        3: ("template", "PodTemplateSpec", False),
        4: ("strategy", "DeploymentStrategy", False),
        5: ("minReadySeconds", "int", False),
        6: ("revisionHistoryLimit", "int", False),
        7: ("paused", "bool", False),
        9: ("progressDeadlineSeconds", "int", False),
    },
    "Deployment": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "DeploymentSpec", False)},
    "ReplicaSetSpec": {
        1: ("replicas", "int", False),
        2: ("selector", "LabelSelector", False),
        3: ("template", "PodTemplateSpec", False),
        4: ("minReadySeconds", "int", False),
    },
    "ReplicaSet": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "ReplicaSetSpec", False)},
    "Namespace": {1: ("metadata", "ObjectMeta", False), 2: ("spec", "NamespaceSpec", False)},
    # meta/v1 and policy/v1: what `kubectl drain` sends (a pod's DELETE, or its Eviction).
    "Preconditions": {1: ("uid", "str", False), 2: ("resourceVersion", "str", False)},
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int", False),
        2: ("preconditions", "Preconditions", False),
        3: ("orphanDependents", "bool", False),
        4: ("propagationPolicy", "str", False),
        5: ("dryRun", "str", True),
    },
    "Eviction": {
        1: ("metadata", "ObjectMeta", False),
        2: ("deleteOptions", "DeleteOptions", False),
    },
    # authorization/v1, what `kubectl auth can-i` posts (its status is the server's to write).
    "ResourceAttributes": {
        1: ("namespace", "str", False),
        2: ("verb", "str", False),
        3: ("group", "str", False),
        4: ("version", "str", False),
        5: ("resource", "str", False),
        6: ("subresource", "str", False),
        7: ("name", "str", False),
    },
    "NonResourceAttributes": {1: ("path", "str", False), 2: ("verb", "str", False)},
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "ResourceAttributes", False),
        2: ("nonResourceAttributes", "NonResourceAttributes", False),
    },
    "SelfSubjectAccessReview": {
        1: ("metadata", "ObjectMeta", False),
        2: ("spec", "SelfSubjectAccessReviewSpec", False),
    },
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "str", False)},
    # authentication/v1, what `kubectl auth whoami` posts (its status is the server's).
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta", False)},
    "SelfSubjectRulesReview": {
        1: ("metadata", "ObjectMeta", False),
        2: ("spec", "SelfSubjectRulesReviewSpec", False),
    },
}
KINDS = frozenset(
    {
        "Secret",
        "ServiceAccount",
        "Namespace",
        "Deployment",
        "ReplicaSet",
        "DeleteOptions",
        "Eviction",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
        "SelfSubjectReview",
    }
)
_VERSIONS = {
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Eviction": "policy/v1",
    "SelfSubjectAccessReview": "authorization.k8s.io/v1",
    "SelfSubjectRulesReview": "authorization.k8s.io/v1",
    "SelfSubjectReview": "authentication.k8s.io/v1",
}
# Fields whose zero value is meaningful and sent on purpose (`--replicas=0`, `--grace-period=0`),
# kept in the JSON.
_ZERO_KEPT = frozenset(
    {"replicas", "maxSurge", "maxUnavailable", "revisionHistoryLimit", "gracePeriodSeconds"}
)


class ProtobufError(ValueError):
    """A body that is not a protobuf object we can read."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    pos, out = 0, []
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            value, pos = data[pos : pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(data):
                raise ProtobufError("truncated field")
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _scalar(kind: Any, value: Any) -> Any:
    # A field sent with the wrong wire type: never `bytes(<varint>)`, which allocates that many.
    if (kind in ("int", "bool")) != isinstance(value, int):
        raise ProtobufError(f"malformed protobuf body: unexpected wire type for a {kind} field")
    if kind == "str":
        return bytes(value).decode("utf-8")
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode("ascii")
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value) - (1 << 64) if int(value) >= 1 << 63 else int(value)
    if kind == "quantity":  # resource.Quantity: a message holding its string form
        return _scalar("str", {n: v for n, _, v in _fields(bytes(value))}.get(1, b""))
    if kind == "intorstr":  # intstr.IntOrString: type (0 int, 1 string), intVal, strVal
        fields = {n: v for n, _, v in _fields(bytes(value))}
        if _scalar("int", fields.get(1, 0)) == 1:
            return _scalar("str", fields.get(3, b""))
        return _scalar("int", fields.get(2, 0))
    if kind == "time":
        seconds = _scalar("int", {n: v for n, _, v in _fields(bytes(value))}.get(1, 0))
        if not seconds:
            return None
        try:
            stamp = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
        except (ValueError, OverflowError, OSError):
            message = f"malformed protobuf body: timestamp {seconds} out of range"
            raise ProtobufError(message) from None
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    return _message(kind, bytes(value))


def _message(name: str, data: bytes) -> dict[str, Any]:
    schema = _SCHEMAS[name]
    out: dict[str, Any] = {}
    for number, _wire, value in _fields(data):
        if number not in schema:
            continue
        json_name, kind, repeated = schema[number]
        if isinstance(kind, tuple):
            if not isinstance(value, bytes):
                raise ProtobufError("malformed protobuf body: a map entry must be a message")
            entry = {n: v for n, _, v in _fields(value)}
            key = _scalar(kind[1], entry.get(1, b""))
            out.setdefault(json_name, {})[key] = _scalar(kind[2], entry.get(2, b""))
            continue
        decoded = _scalar(kind, value)
        if repeated:
            out.setdefault(json_name, []).append(decoded)
        else:
            out[json_name] = decoded
    # proto2 writes zero values explicitly; JSON omits them.
    return {
        k: v
        for k, v in out.items()
        if (v not in ("", None, {}) or k in _ZERO_KEPT) and not (k == "generation" and v == 0)
    }


def decode(body: bytes) -> dict[str, Any]:
    """A JSON-shaped object from a protobuf body; raises `ProtobufError`."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    try:
        envelope = {n: v for n, _, v in _fields(body[len(MAGIC) :])}
        type_meta = _scalar("TypeMeta", envelope.get(1, b""))
        kind = type_meta.get("kind")
        if kind not in KINDS:
            raise ProtobufError(
                f"protobuf bodies are accepted for {', '.join(sorted(KINDS))}, "
                f"not {json.dumps(kind)}; send JSON or YAML"
            )
        obj = _scalar(kind, envelope.get(2, b""))
    except (UnicodeDecodeError, IndexError) as exc:
        raise ProtobufError(f"malformed protobuf body: {exc}") from None
    default_version = _VERSIONS.get(kind, "v1")
    return {"apiVersion": type_meta.get("apiVersion", default_version), "kind": kind, **obj}
