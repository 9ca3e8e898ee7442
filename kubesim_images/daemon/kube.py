"""Kubernetes API shapes: Status errors, lists, object metadata and the Table printers.

The API server's own conventions, so kubectl and the official clients read our answers as they
read a real cluster's: `Status` objects with reason and code (and field causes for 422), `List`
kinds with `metadata.resourceVersion`, and `meta.k8s.io/v1` `Table`s whose columns match
`kubectl get`'s (the pod STATUS column is computed as kubectl's printer does).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubesim_images.pod import FieldError


class ApiError(Exception):
    """An answer the API gives as a `Status` (raised anywhere under a handler)."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        # `{}` is kept: the apiserver's generic errors carry empty details, and kubectl reads
        # them (`kubectl debug` dereferences them to tell a missing subresource from a pod).
        self.details = dict(details) if details is not None else None

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            doc["details"] = self.details
        return doc


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource} "{name}" not found', details={"name": name, "kind": resource}
    )


def already_exists(resource: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{resource} "{name}" already exists',
        details={"name": name, "kind": resource},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, name: str, causes: Sequence[FieldError]) -> ApiError:
    details = ", ".join(str(c) for c in causes)
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {details}',
        details={
            "name": name,
            "kind": kind,
            "causes": [
                {"reason": c.reason, "message": c.message, "field": c.field} for c in causes
            ],
        },
    )


def query_flag(query: Mapping[str, str], name: str) -> bool:
    """A boolean query parameter as apimachinery's Convert_Slice_string_To_bool reads it:
    absent, "0" or "false" (any case) is false; anything else, the empty string included, is
    true (`?watch` and `?watch=yes` watch)."""
    value = query.get(name)
    return value is not None and value != "0" and value.lower() != "false"


def query_int(query: Mapping[str, str], name: str) -> int | None:
    """An int64 query parameter, else the apiserver's 400 with Go's strconv text."""
    text = query.get(name)
    if text is None:
        return None
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise bad_request(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise bad_request(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def success_status(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "kind": kind, "uid": uid},
    }


def kube_list(
    kind: str, items: Iterable[Mapping[str, Any]], resource_version: int, api_version: str = "v1"
) -> dict[str, Any]:
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"resourceVersion": str(resource_version)},
        "items": list(items),
    }


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def human_age(seconds: float) -> str:
    """kubectl's `duration.HumanDuration`: 5s, 3m2s, 2h5m, 3d4h, 2y..."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


Column = tuple[str, str, str, int]  # name, type, format, priority (1: only with -o wide)


INCLUDE_OBJECT = ("None", "Metadata", "Object")


def include_object(value: str | None) -> str:
    """A Table's `includeObject`: what each row carries (kubectl asks Object to --sort-by)."""
    if value in (None, ""):
        return "Metadata"
    if value not in INCLUDE_OBJECT:
        raise bad_request(
            f'includeObject: Invalid value: "{value}": must be '
            "'Metadata', 'Object', 'None', or empty"
        )
    return value


def _row_object(obj: Mapping[str, Any], include: str) -> Mapping[str, Any] | None:
    if include == "Object":
        return obj
    if include == "None":
        return None
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(
    columns: Sequence[Column],
    rows: Iterable[tuple[Mapping[str, Any], list[Any]]],
    resource_version: int,
    include: str = "Metadata",
) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table; each row carries what `include` asks (see include_object)."""
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": [
            {"name": name, "type": kind, "format": fmt, "description": "", "priority": priority}
            for name, kind, fmt, priority in columns
        ],
        "rows": [{"cells": cells, "object": _row_object(obj, include)} for obj, cells in rows],
    }


def pod_status_column(pod: Mapping[str, Any]) -> tuple[str, int, int, int]:
    """kubectl's printPod (v1.32): the STATUS reason, ready and total containers, restarts.

    A sidecar (an init container with `restartPolicy: Always`) counts in the total; once started
    it does not hold initialisation, and counts as ready when it is.
    """
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    init_specs = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in init_specs if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(sidecars)
    ready = 0
    initializing = False
    for index, container in enumerate(status.get("initContainerStatuses") or []):
        state = container.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        if container.get("name") in sidecars and container.get("started"):
            ready += 1 if container.get("ready") else 0
            continue
        if waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break
    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if not initializing or initialized:
        has_running = False
        for container in reversed(status.get("containerStatuses") or []):
            state = container.get("state") or {}
            waiting = state.get("waiting")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running"
    # RESTARTS: the app containers' restarts and the sidecars' (a sidecar is restarted too).
    restarts = sum(
        int(c.get("restartCount") or 0)
        for c in (status.get("containerStatuses") or [])
        + [c for c in status.get("initContainerStatuses") or [] if c.get("name") in sidecars]
    )
    deleted = (pod.get("metadata") or {}).get("deletionTimestamp")
    if deleted and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"  # a deleted pod's last row, as kubectl's printPod shows it
    return reason, ready, total, restarts


POD_COLUMNS: tuple[Column, ...] = (
    ("Name", "string", "name", 0),
    ("Ready", "string", "", 0),
    ("Status", "string", "", 0),
    ("Restarts", "string", "", 0),
    ("Age", "string", "", 0),
    ("IP", "string", "", 1),
    ("Node", "string", "", 1),
    ("Nominated Node", "string", "", 1),
    ("Readiness Gates", "string", "", 1),
)
NODE_COLUMNS: tuple[Column, ...] = (
    ("Name", "string", "name", 0),
    ("Status", "string", "", 0),
    ("Roles", "string", "", 0),
    ("Age", "string", "", 0),
    ("Version", "string", "", 0),
    ("Internal-IP", "string", "", 1),
    ("External-IP", "string", "", 1),
    ("OS-Image", "string", "", 1),
    ("Kernel-Version", "string", "", 1),
    ("Container-Runtime", "string", "", 1),
)
EVENT_COLUMNS: tuple[Column, ...] = (
    ("Last Seen", "string", "", 0),
    ("Type", "string", "", 0),
    ("Reason", "string", "", 0),
    ("Object", "string", "", 0),
    ("Subobject", "string", "", 1),
    ("Source", "string", "", 1),
    ("Message", "string", "", 0),
    ("First Seen", "string", "", 1),
    ("Count", "integer", "", 1),
    ("Name", "string", "name", 1),
)
SECRET_COLUMNS: tuple[Column, ...] = (
    ("Name", "string", "name", 0),
    ("Type", "string", "", 0),
    ("Data", "string", "", 0),
    ("Age", "string", "", 0),
)
SERVICEACCOUNT_COLUMNS: tuple[Column, ...] = (
    ("Name", "string", "name", 0),
    ("Secrets", "string", "", 0),
    ("Age", "string", "", 0),
)
NAMESPACE_COLUMNS: tuple[Column, ...] = (
    ("Name", "string", "name", 0),
    ("Status", "string", "", 0),
    ("Age", "string", "", 0),
)
DEPLOYMENT_COLUMNS: tuple[Column, ...] = (
    ("Name", "string", "name", 0),
    ("Ready", "string", "", 0),
    ("Up-to-date", "string", "", 0),
    ("Available", "string", "", 0),
    ("Age", "string", "", 0),
    ("Containers", "string", "", 1),
    ("Images", "string", "", 1),
    ("Selector", "string", "", 1),
)
REPLICASET_COLUMNS: tuple[Column, ...] = (
    ("Name", "string", "name", 0),
    ("Desired", "integer", "", 0),
    ("Current", "integer", "", 0),
    ("Ready", "integer", "", 0),
    ("Age", "string", "", 0),
    ("Containers", "string", "", 1),
    ("Images", "string", "", 1),
    ("Selector", "string", "", 1),
)
