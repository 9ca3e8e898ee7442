"""What the workload controllers need from the API, and the object rules they share.

The controllers never see HTTP or the daemon's storage: they read and write objects through
`Objects` (a Protocol the daemon implements over its stores) and record events through it. The
helpers are the apimachinery rules both controllers use: label selectors, controller
ownerReferences, the `pod-template-hash` label, template equality that ignores that label, and
when a pod counts as ready and available.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Protocol

Obj = dict[str, Any]

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
APPS_V1 = "apps/v1"
# Alphabet of `rand.String` and `rand.SafeEncodeString`: no vowels (no words), no 0/1/3 (no
# look-alikes), as generated names and template hashes are in Kubernetes.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class Objects(Protocol):
    """The API as the controllers use it. Writes are committed when the call returns."""

    def list(self, kind: str, namespace: str) -> list[Obj]:
        """Objects of `kind` ("Pod", "ReplicaSet", "Deployment") in `namespace` ("" for
        every namespace), as served."""

    def get(self, kind: str, namespace: str, name: str) -> Obj | None: ...

    def create(self, kind: str, namespace: str, body: Obj) -> Obj:
        """Create as a client would; raises when the API refuses (name taken, invalid)."""

    def update(self, kind: str, doc: Obj) -> Obj:
        """Replace metadata (labels, annotations) and spec; the generation follows the spec."""

    def update_status(self, kind: str, doc: Obj) -> Obj:
        """Replace the status only (the `/status` subresource)."""

    async def delete(self, kind: str, namespace: str, name: str, uid: str) -> None:
        """Delete that object if it is still the one with `uid`."""

    def event(self, obj: Obj, kind: str, reason: str, message: str, component: str) -> None:
        """Record an event about `obj` (kind Normal or Warning) from `component`."""


class ObjectsError(Exception):
    """A write an `Objects` refused, its message the API's; the runner logs the failed sync
    and tries it again later (any exception does the same: this one is for implementations to
    raise). `namespace_terminating`: refused because the namespace is being deleted (the
    controllers record no event then, as upstream's pod control does not)."""

    def __init__(self, message: str, *, namespace_terminating: bool = False) -> None:
        super().__init__(message)
        self.namespace_terminating = namespace_terminating


# -- labels and owners ---------------------------------------------------------------------------
def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A `LabelSelector` (matchLabels and matchExpressions); an empty one matches nothing,
    as `metav1.LabelSelectorAsSelector` makes a workload's empty selector match no pod."""
    if not selector:
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return False
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for expr in expressions:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """The selector as `labels.Selector.String()` prints it (the Scale status's selector)."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key = expr.get("operator"), expr.get("key")
        values = ",".join(sorted(expr.get("values") or []))
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})"}.get(
                op, key if op == "Exists" else f"!{key}"
            )
        )
    return ",".join(sorted(parts))


def controller_uid(doc: Mapping[str, Any]) -> str | None:
    """The UID of the object's managing controller (the ownerReference with controller)."""
    for ref in owner_refs(doc):
        if ref.get("controller") is True:
            return str(ref.get("uid"))
    return None


def owner_refs(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The object's ownerReferences; entries that are not objects (a client's garbage in a
    pod's metadata, which the daemon stores as given) are no owner."""
    refs = doc["metadata"].get("ownerReferences")
    return [r for r in refs if isinstance(r, Mapping)] if isinstance(refs, list) else []


def controller_ref(owner: Mapping[str, Any]) -> Obj:
    meta = owner["metadata"]
    return {
        "apiVersion": APPS_V1,
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


# -- templates -----------------------------------------------------------------------------------
def _fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """`rand.SafeEncodeString`: each character mapped into the safe alphabet."""
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def template_hash(template: Mapping[str, Any], collision_count: int = 0) -> str:
    """`ComputeHash`: FNV-32a of the template (and the collision count), safe-encoded.

    Kubernetes hashes Go's printed struct; this hashes the canonical JSON of the normalised
    template, so the values differ from a real cluster's but share their shape and stability.
    """
    data = json.dumps(normalised(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return safe_encode(str(_fnv32a(data)))


def normalised(value: Any) -> Any:
    """The value as a Go struct round trip sees it: null, empty maps and empty lists dropped
    (kubectl sends `creationTimestamp: null` and `resources: {}` in templates it echoes)."""
    if isinstance(value, Mapping):
        out = {k: normalised(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    return value


def without_hash(template: Mapping[str, Any]) -> Any:
    meta = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != POD_TEMPLATE_HASH}
    meta["labels"] = labels
    return normalised({**template, "metadata": meta})


def equal_ignore_hash(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """`EqualIgnoreHash`: the same template but for the pod-template-hash label."""
    return bool(without_hash(a) == without_hash(b))


def revision(doc: Mapping[str, Any]) -> int:
    """The revision annotation as a number; absent or malformed counts as 0, as upstream."""
    text = (doc["metadata"].get("annotations") or {}).get(REVISION, "0")
    try:
        return int(text)
    except ValueError:
        return 0


# -- pods ----------------------------------------------------------------------------------------
def is_active(pod: Mapping[str, Any]) -> bool:
    """`controller.IsPodActive`: not terminating, not finished."""
    phase = (pod.get("status") or {}).get("phase")
    return pod["metadata"].get("deletionTimestamp") is None and phase not in {
        "Succeeded",
        "Failed",
    }


def ready_since(pod: Mapping[str, Any]) -> dt.datetime | None:
    """When the pod's Ready condition last became True, or None when it is not ready."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            if cond.get("status") != "True":
                return None
            stamp = cond.get("lastTransitionTime")
            return (
                dt.datetime.fromisoformat(stamp)
                if stamp
                else dt.datetime.min.replace(tzinfo=dt.UTC)
            )
    return None


def is_available(pod: Mapping[str, Any], min_ready_seconds: int, now: dt.datetime) -> bool:
    """`IsPodAvailable`: ready for at least minReadySeconds."""
    since = ready_since(pod)
    if since is None:
        return False
    return min_ready_seconds == 0 or since + dt.timedelta(seconds=min_ready_seconds) <= now
