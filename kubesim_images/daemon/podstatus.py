"""A pod's status written through `pods/status`, and what the simulated kubelet makes of it.

The apiserver takes status writes from anyone allowed to (`kubectl patch --subresource=status`,
a controller's UpdateStatus, an operator adding its readiness gate's condition): merge,
strategic-merge, JSON patch, apply or PUT. Its status strategy keeps the spec, the owner
references, the deletion timestamp and the QoS class as stored, so a status write changes the
status and the labels and annotations only. `ValidatePodStatusUpdate` checks each condition
type that is not one of the system's three as a qualified name.

The written status is what every client sees until the pod's owner writes its own: the kubelet's
status manager, which every `STATUS_SYNC_PERIOD` seconds compares the apiserver's status with
its own (`needsReconcile`, comparing only what the kubelet owns) and writes its own where they
differ, or at its next status change. It keeps the conditions it does not own
(`mergePodStatus`), so a readiness gate's condition stays; phase, container statuses and its
five conditions are its again. A pod with readiness gates is synced at once after a status
write (`HandlePodReconcile`: its Ready condition follows its gates' conditions), so Ready turns
True as soon as the last gate's condition is written True. A pod no kubelet runs keeps what
was written until the scheduler writes its PodScheduled condition.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from kubesim_images.daemon import gojson
from kubesim_images.daemon.gotyped import Decoder
from kubesim_images.daemon.kube import bad_request, invalid
from kubesim_images.daemon.objects import merge_patch
from kubesim_images.daemon.podupdate import SpecMerge
from kubesim_images.daemon.validation import qualified_name_errors
from kubesim_images.pod import FieldError

# The kubelet status manager's period (pkg/kubelet/status: syncPeriod): how soon it overwrites
# a status written by someone else.
STATUS_SYNC_PERIOD = 10.0
# kubetypes.PodConditionsByKubelet (PodReadyToStartContainers is on by default in v1.32).
KUBELET_CONDITIONS = frozenset(
    {"PodScheduled", "Ready", "Initialized", "ContainersReady", "PodReadyToStartContainers"}
)
# validatePodConditions skips the name check of these.
_SYSTEM_CONDITIONS = frozenset({"PodScheduled", "Ready", "Initialized"})
# Lists of PodStatus merged by key by a strategic merge patch or an apply (patchMergeKey).
_KEYED_LISTS = {"conditions": "type", "hostIPs": "ip", "podIPs": "ip"}
_LISTS = {
    "containerStatuses": "[]v1.ContainerStatus",
    "initContainerStatuses": "[]v1.ContainerStatus",
    "hostIPs": "[]v1.HostIP",
    "podIPs": "[]v1.PodIP",
}
_CONDITION_STRINGS = ("type", "status", "reason", "message")


def _refusal(value: Any, struct: str, path: str, go_type: str) -> Exception:
    return bad_request(
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal '
        f"{gojson.go_type(value)} into Go struct field {struct}.{path} of type {go_type}"
    )


def _merge_keyed(current: Any, items: list[Any], key: str) -> list[Any]:
    merged = copy.deepcopy(list(current)) if isinstance(current, list) else []
    index = {c.get(key): i for i, c in enumerate(merged) if isinstance(c, Mapping)}
    for item in items:
        if isinstance(item, Mapping) and item.get("$patch") == "delete":
            where = index.get(item.get(key))
            if where is not None:
                merged[where] = None
            continue
        where = index.get(item.get(key)) if isinstance(item, Mapping) else None
        if where is None:
            merged.append(copy.deepcopy(item))
        else:
            merged[where] = merge_patch(merged[where], item)
    return [m for m in merged if m is not None]


def patched_pod(current: Mapping[str, Any], patch: Mapping[str, Any], merge: SpecMerge) -> Any:
    """The whole pod after a status patch on `current` (the pod as shown): a JSON patch's
    result as it is, else a merge patch, whose status lists merge by key when the patch is a
    strategic merge patch or an apply."""
    if "__replace__" in patch:
        return patch["__replace__"]
    if merge is not SpecMerge.BY_NAME or not isinstance(patch.get("status"), Mapping):
        return merge_patch(current, patch)
    status_patch = {k: v for k, v in patch["status"].items() if not k.startswith("$")}
    lists = {k: status_patch.pop(k) for k in _KEYED_LISTS if isinstance(status_patch.get(k), list)}
    out = merge_patch(current, {**patch, "status": status_patch})
    status = out.setdefault("status", {})
    for name, items in lists.items():
        status[name] = _merge_keyed(
            (current.get("status") or {}).get(name), items, _KEYED_LISTS[name]
        )
    return out


def check_status(name: str, status: Any) -> dict[str, Any]:
    """The status a write brings, refused as the apiserver's decoder (400) and
    `ValidatePodStatusUpdate` (422) refuse it."""
    if status is None:
        return {}
    if not isinstance(status, Mapping):
        raise _refusal(status, "Pod", "status", "v1.PodStatus")
    for field in ("phase", "message", "reason", "hostIP", "podIP", "nominatedNodeName"):
        value = status.get(field)
        if value is not None and not isinstance(value, str):
            raise _refusal(value, "PodStatus", f"status.{field}", "string")
    for field, go_type in _LISTS.items():
        value = status.get(field)
        if value is not None and not isinstance(value, list):
            raise _refusal(value, "PodStatus", f"status.{field}", go_type)
    conditions = status.get("conditions")
    if conditions is None:
        return _typed(status)
    if not isinstance(conditions, list):
        raise _refusal(conditions, "PodStatus", "status.conditions", "[]v1.PodCondition")
    causes: list[FieldError] = []
    for i, cond in enumerate(conditions):
        if not isinstance(cond, Mapping):
            raise _refusal(cond, "PodStatus", "status.conditions", "v1.PodCondition")
        for key in _CONDITION_STRINGS:
            value = cond.get(key)
            if value is not None and not isinstance(value, str):
                raise _refusal(value, "PodCondition", f"status.conditions.{key}", "string")
        kind = cond.get("type") or ""
        if kind in _SYSTEM_CONDITIONS:
            continue
        causes += [
            FieldError(
                f"status.conditions[{i}].Type", "FieldValueInvalid", f'Invalid value: "{kind}": {m}'
            )
            for m in qualified_name_errors(kind)
        ]
    if causes:
        raise invalid("Pod", name, causes)
    return _typed(status)


def _typed(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status as Go decodes it: types checked, required fields at their zero value."""
    out = Decoder("Pod").decode(status, "io.k8s.api.core.v1.PodStatus", "status")
    return dict(out)


def foreign_conditions(written: Any) -> list[dict[str, Any]]:
    """The conditions of a written status that the kubelet does not own: it keeps them."""
    if not isinstance(written, Mapping):
        return []
    return [
        dict(c)
        for c in written.get("conditions") or ()
        if isinstance(c, Mapping) and c.get("type") not in KUBELET_CONDITIONS
    ]


def readiness_gate_messages(spec: Mapping[str, Any], others: Sequence[Mapping[str, Any]]) -> str:
    """Why the pod's readiness gates keep it from Ready, in the kubelet's words
    (`GeneratePodReadyCondition`); "" when every gate's condition is True."""
    found: dict[Any, Any] = {}
    for cond in others:
        found.setdefault(cond.get("type"), cond.get("status"))
    messages = []
    for gate in spec.get("readinessGates") or ():
        kind = gate.get("conditionType") if isinstance(gate, Mapping) else None
        if kind not in found:
            messages.append(
                f"corresponding condition of pod readiness gate {json.dumps(kind)} does not exist."
            )
        elif found[kind] != "True":
            messages.append(
                f'the status of pod readiness gate {json.dumps(kind)} is not "True", but '
                f"{found[kind]}"
            )
    return ", ".join(messages)


def _by_kubelet(status: Mapping[str, Any]) -> dict[str, Any]:
    """What `isPodStatusByKubeletEqual` compares: all but the conditions it does not own."""
    conditions = [
        c
        for c in status.get("conditions") or ()
        if isinstance(c, Mapping) and c.get("type") in KUBELET_CONDITIONS
    ]
    return {
        **status,
        "conditions": sorted(conditions, key=lambda c: str(c.get("type"))),
    }


def kubelet_agrees(kubelets: Mapping[str, Any], written: Mapping[str, Any]) -> bool:
    """Whether the kubelet's reconcile finds nothing of its own to write back."""
    return _by_kubelet(kubelets) == _by_kubelet(written)
