"""The Go types of the fields the daemon stores, enforced as the API server's decoder does.

The API server decodes a body into Go structs, so `activeDeadlineSeconds: "x"` or
`secrets: 5` is refused 400 before anything is stored. The daemon keeps bodies as JSON; without
these checks such a value would be stored and later break every client that decodes the object
into its types (`kubectl describe`, the Python client's list). Only the fields a pod,
secret or service account commonly carries are typed here; deeper structures are checked as
objects or arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubesim_images.daemon import gojson
from kubesim_images.daemon.kube import ApiError, bad_request

# field -> (JSON shape, Go type named in the error)
Shape = dict[str, tuple[str, str]]
POD_SPEC: Shape = {
    "containers": ("array", "[]v1.Container"),
    "initContainers": ("array", "[]v1.Container"),
    "imagePullSecrets": ("array", "[]v1.LocalObjectReference"),
    "volumes": ("array", "[]v1.Volume"),
    "tolerations": ("array", "[]v1.Toleration"),
    "restartPolicy": ("string", "v1.RestartPolicy"),
    "dnsPolicy": ("string", "v1.DNSPolicy"),
    "serviceAccountName": ("string", "string"),
    "serviceAccount": ("string", "string"),
    "nodeName": ("string", "string"),
    "hostname": ("string", "string"),
    "subdomain": ("string", "string"),
    "schedulerName": ("string", "string"),
    "priorityClassName": ("string", "string"),
    "runtimeClassName": ("string", "string"),
    "terminationGracePeriodSeconds": ("int", "int64"),
    "activeDeadlineSeconds": ("int", "int64"),
    "priority": ("int", "int32"),
    "automountServiceAccountToken": ("bool", "bool"),
    "hostNetwork": ("bool", "bool"),
    "hostPID": ("bool", "bool"),
    "hostIPC": ("bool", "bool"),
    "enableServiceLinks": ("bool", "bool"),
    "nodeSelector": ("string map", "map[string]string"),
    "affinity": ("object", "v1.Affinity"),
    "securityContext": ("object", "v1.PodSecurityContext"),
}
CONTAINER: Shape = {
    "name": ("string", "string"),
    "image": ("string", "string"),
    "imagePullPolicy": ("string", "v1.PullPolicy"),
    "workingDir": ("string", "string"),
    "terminationMessagePath": ("string", "string"),
    "terminationMessagePolicy": ("string", "v1.TerminationMessagePolicy"),
    "command": ("string array", "[]string"),
    "args": ("string array", "[]string"),
    "ports": ("array", "[]v1.ContainerPort"),
    "env": ("array", "[]v1.EnvVar"),
    "volumeMounts": ("array", "[]v1.VolumeMount"),
    "resources": ("object", "v1.ResourceRequirements"),
    "securityContext": ("object", "v1.SecurityContext"),
    "livenessProbe": ("object", "v1.Probe"),
    "readinessProbe": ("object", "v1.Probe"),
    "startupProbe": ("object", "v1.Probe"),
    "stdin": ("bool", "bool"),
    "tty": ("bool", "bool"),
}
SECRET: Shape = {
    "data": ("object", "map[string][]uint8"),
    "stringData": ("object", "map[string]string"),
    "type": ("string", "v1.SecretType"),
    "immutable": ("bool", "bool"),
}
SERVICE_ACCOUNT: Shape = {
    "secrets": ("object array", "[]v1.ObjectReference"),
    "imagePullSecrets": ("array", "[]v1.LocalObjectReference"),
    "automountServiceAccountToken": ("bool", "bool"),
}
OBJECT_META: Shape = {
    "generateName": ("string", "string"),
    "generation": ("int", "int64"),
    "finalizers": ("string array", "[]string"),
    "ownerReferences": ("object array", "[]v1.OwnerReference"),
    "managedFields": ("object array", "[]v1.ManagedFieldsEntry"),
    "deletionGracePeriodSeconds": ("int", "int64"),
    "labels": ("string map", "map[string]string"),
    "annotations": ("string map", "map[string]string"),
}
_ALWAYS = frozenset({"apiVersion", "kind", "metadata"})


def _fits(value: Any, shape: str) -> bool:
    if shape == "string":
        return isinstance(value, str)
    if shape == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if shape == "bool":
        return isinstance(value, bool)
    if shape == "object":
        return isinstance(value, Mapping)
    if shape == "string map":
        return isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values())
    if shape == "string array":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if shape == "object array":
        return isinstance(value, list) and all(isinstance(v, Mapping) for v in value)
    return isinstance(value, list)  # "array"


def _refusal(kind: str, struct: str, path: str, value: Any, go_type: str) -> ApiError:
    return bad_request(
        f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal '
        f"{gojson.go_type(value)} into Go struct field {struct}.{path} of type {go_type}"
    )


def check_fields(
    doc: Mapping[str, Any], shape: Shape, *, kind: str, struct: str, prefix: str = ""
) -> None:
    """Refuse (400) a field of `shape` holding a value its Go type cannot hold; null is absent."""
    for field, (json_shape, go_type) in shape.items():
        value = doc.get(field)
        if value is not None and not _fits(value, json_shape):
            path = f"{prefix}.{field}" if prefix else field
            raise _refusal(kind, struct, path, value, go_type)


def check_pod(body: Mapping[str, Any]) -> None:
    spec = body.get("spec")
    if not isinstance(spec, Mapping):
        return  # absent or not an object: the pod's own validation answers (422)
    check_fields(spec, POD_SPEC, kind="Pod", struct="PodSpec", prefix="spec")
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if isinstance(container, Mapping):
                check_fields(
                    container, CONTAINER, kind="Pod", struct="Container", prefix=f"spec.{key}"
                )


def keep_shape(doc: dict[str, Any], kind: str) -> dict[str, Any]:
    """A Secret or ServiceAccount with its kind's fields only (unknown ones are dropped, as the
    API server drops them), each of its Go type (null means absent)."""
    shape = SECRET if kind == "Secret" else SERVICE_ACCOUNT
    check_fields(doc, shape, kind=kind, struct=kind)
    if isinstance(doc.get("metadata"), Mapping):
        check_fields(
            doc["metadata"], OBJECT_META, kind=kind, struct="ObjectMeta", prefix="metadata"
        )
    return {k: v for k, v in doc.items() if (k in shape and v is not None) or k in _ALWAYS}
