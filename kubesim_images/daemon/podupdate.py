"""A pod update as the API server takes it: container images change, the rest of the spec not.

`patch_spec` merges a patch's spec into the stored one; container lists merge by container
name for a strategic merge patch or a server-side apply (what `kubectl set image`, `kubectl
apply` and `kubectl patch` send), so `{"containers": [{"name": "app", "image": "x"}]}` changes
one image and keeps the container's other fields; strategic-merge directives (`$setElementOrder`
and the like) only order or annotate, so they are dropped. `check_spec_update` is
ValidatePodUpdate: with every container image blanked, the old and new specs must be equal,
or the update is refused with the API server's Forbidden text.
"""

from __future__ import annotations

import copy
import enum
import json
from collections.abc import Mapping
from typing import Any

from kubesim_images.daemon.kube import bad_request, invalid
from kubesim_images.daemon.objects import merge_patch
from kubesim_images.pod import FieldError, Pod

CONTAINER_LISTS = ("initContainers", "containers")
# ValidatePodUpdate's list, in its order and punctuation (Kubernetes v1.32, in-place pod
# resizing off as by default).
UPDATABLE = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _without_directives(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_without_directives(v) for v in value]
    return value


class SpecMerge(enum.Enum):
    """How a write's spec meets the stored one."""

    JSON = "json"  # RFC 7386 merge patch: lists replace
    BY_NAME = "by-name"  # strategic merge patch or server-side apply: containers merge by name
    REPLACE = "replace"  # PUT: the body's spec is the whole new spec


def patch_spec(current: Mapping[str, Any], patch: Any, merge: SpecMerge) -> dict[str, Any]:
    """The spec after `patch` (see the module comment)."""
    if not isinstance(patch, Mapping):
        raise bad_request("spec must be an object")
    patch = _without_directives(patch)
    if merge is SpecMerge.REPLACE:
        return copy.deepcopy(dict(patch))
    if merge is SpecMerge.JSON:
        return dict(merge_patch(current, patch))
    lists = {k: patch[k] for k in CONTAINER_LISTS if isinstance(patch.get(k), list)}
    out = dict(merge_patch(current, {k: v for k, v in patch.items() if k not in lists}))
    for key, items in lists.items():
        merged = copy.deepcopy(list(current.get(key) or []))
        index = {c.get("name"): i for i, c in enumerate(merged) if isinstance(c, Mapping)}
        for item in items:
            where = index.get(item.get("name")) if isinstance(item, Mapping) else None
            if where is None:
                merged.append(copy.deepcopy(item))  # a new container: refused by the check
            else:
                merged[where] = merge_patch(merged[where], item)
        out[key] = merged
    return out


def _blank_images(spec: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(spec)
    for key in CONTAINER_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [{**c, "image": None} if isinstance(c, Mapping) else c for c in out[key]]
    return out


# Go's names of the PodSpec fields whose JSON name does not just capitalise.
_GO_FIELDS = {"dnsPolicy": "DNSPolicy", "dnsConfig": "DNSConfig", "os": "OS"}
_DIFF_VALUE_CHARS = 200  # a changed list of containers is shown, not all of it


def _diff_value(value: Any) -> str:
    text = json.dumps(value, separators=(", ", ": "), sort_keys=True)
    return text if len(text) <= _DIFF_VALUE_CHARS else text[:_DIFF_VALUE_CHARS] + " ..."


def spec_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """The changed fields as the apiserver's `cmp.Diff(oldPod.Spec, newPod.Spec)` lays them out
    (`-` old, `+` new, one field a line), with the values in JSON."""
    lines = ["  core.PodSpec{"]
    for key in sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)):
        go_name = _GO_FIELDS.get(key, key[:1].upper() + key[1:])
        if key in old:
            lines.append(f"- \t{go_name}: {_diff_value(old[key])},")
        if key in new:
            lines.append(f"+ \t{go_name}: {_diff_value(new[key])},")
    lines.append("  }")
    return "\n".join(lines)


def check_spec_update(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """ValidatePodUpdate: only container images may differ (422 Forbidden otherwise, with the
    apiserver's text: the fields that may change, then a diff of the specs)."""
    old_blank, new_blank = _blank_images(old), _blank_images(new)
    if old_blank != new_blank:
        message = f"Forbidden: pod updates may not change fields other than {UPDATABLE}"
        diff = spec_diff(old_blank, new_blank)
        raise invalid(
            "Pod", name, [FieldError("spec", "FieldValueForbidden", f"{message}\n{diff}")]
        )


def default_spec(spec: dict[str, Any], pod: Pod) -> None:
    """The API server's defaults for what a spec leaves out, and each container's
    imagePullPolicy as admitted (AlwaysPullImages applies on create and update alike)."""
    lists = (("initContainers", pod.init_containers), ("containers", pod.containers))
    for key, containers in lists:
        for raw, container in zip(spec.get(key) or [], containers, strict=True):
            raw["imagePullPolicy"] = container.pull_policy.value
            raw.setdefault("terminationMessagePath", "/dev/termination-log")
            raw.setdefault("terminationMessagePolicy", "File")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
