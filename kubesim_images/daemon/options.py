"""Write options as the API server reads them: `dryRun` on create, update, patch and delete,
and a delete's `DeleteOptions` (grace period, preconditions).

`dryRun=All` runs a write through every check and default a real one gets and answers the
object that would be stored, but stores nothing. It comes from the query, or for a DELETE from
its `DeleteOptions` body when there is one (the body wins, as in the API server's delete
handler). Any other value is refused 422 with the API server's text for the options kind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kubesim_images.daemon.bodies import read_body
from kubesim_images.daemon.kube import ApiError, bad_request

DRY_RUN_ALL = "All"
# The options object each verb decodes its query into (its kind names the 422).
OPTIONS_KIND = {
    "POST": "CreateOptions",
    "PUT": "UpdateOptions",
    "PATCH": "PatchOptions",
    "DELETE": "DeleteOptions",
}


def _go_strings(values: Sequence[Any]) -> str:
    """A []string as Go's %#v prints it in a field error: []string{"a", "b"}."""
    return "[]string{" + ", ".join(json.dumps(str(v)) for v in values) + "}"


def check_dry_run(values: Sequence[Any], method: str) -> bool:
    """True for a dry run (`All`), False for none; any other value is the API server's 422."""
    if not values:
        return False
    if all(v == DRY_RUN_ALL for v in values):
        return True
    kind = OPTIONS_KIND.get(method, "CreateOptions")
    message = f'Unsupported value: {_go_strings(values)}: supported values: "{DRY_RUN_ALL}"'
    raise ApiError(
        422,
        "Invalid",
        f'{kind}.meta.k8s.io "" is invalid: dryRun: {message}',
        details={
            "group": "meta.k8s.io",
            "kind": kind,
            "causes": [{"reason": "FieldValueNotSupported", "message": message, "field": "dryRun"}],
        },
    )


# The patch types a kind with a strategic merge patch accepts, in the apiserver's order.
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
APPLY_PATCH = "application/apply-patch+yaml"


def check_patch(request: web.Request) -> None:
    """A PATCH's media type and PatchOptions, before anything else is read: 415 for a media
    type that is no patch (`application/json` included), and ValidatePatchOptions' 422s (a
    server-side apply names its field manager; `force` is for apply alone)."""
    if request.content_type not in PATCH_TYPES:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(PATCH_TYPES),
        )
    causes: list[tuple[str, str, str]] = []
    if request.content_type == APPLY_PATCH:
        if not request.query.get("fieldManager"):
            causes.append(
                (
                    "fieldManager",
                    "FieldValueRequired",
                    "Required value: is required for apply patch",
                )
            )
    elif "force" in request.query:
        causes.append(
            ("force", "FieldValueForbidden", "Forbidden: may not be specified for non-apply patch")
        )
    if causes:
        text = ", ".join(f"{field}: {message}" for field, _, message in causes)
        raise ApiError(
            422,
            "Invalid",
            f'PatchOptions.meta.k8s.io "" is invalid: {text}',
            details={
                "group": "meta.k8s.io",
                "kind": "PatchOptions",
                "causes": [
                    {"reason": reason, "message": message, "field": field}
                    for field, reason, message in causes
                ],
            },
        )


def dry_run(request: web.Request) -> bool:
    """Whether this create, update or patch is a dry run (checked before the body is read)."""
    return check_dry_run(request.query.getall("dryRun", []), request.method)


@dataclass(frozen=True, slots=True)
class DeleteOptions:
    """What a DELETE asks beyond dry run: the grace period (None: the object's own) and the
    preconditions the stored object must meet."""

    grace_period: int | None = None
    uid: str | None = None
    resource_version: str | None = None


NO_OPTIONS = DeleteOptions()


async def _delete_body(request: web.Request) -> Mapping[str, Any] | None:
    if not request.body_exists or request.content_length == 0:
        return None
    body = await read_body(request)
    if not isinstance(body, Mapping):
        raise bad_request("the request body must be a DeleteOptions object")
    return body


async def delete_dry_run(request: web.Request) -> bool:
    """Whether this DELETE is a dry run: its DeleteOptions body, else its query."""
    body = await _delete_body(request)
    if body is None:
        return dry_run(request)
    values = body.get("dryRun")
    if values is None:
        return False
    if not isinstance(values, list):
        raise bad_request("DeleteOptions.dryRun must be a list of strings")
    return check_dry_run(values, "DELETE")


def _grace_period(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            value = None
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request("DeleteOptions.gracePeriodSeconds must be an integer")
    # The apiserver treats a negative grace period as "delete now" (as kubectl's --force).
    return max(value, 0)


async def delete_options(request: web.Request) -> DeleteOptions:
    """A DELETE's grace period and preconditions: its DeleteOptions body, else its query."""
    body = await _delete_body(request)
    if body is None:
        return DeleteOptions(grace_period=_grace_period(request.query.get("gracePeriodSeconds")))
    return parse_delete_options(body)


def parse_delete_options(body: Mapping[str, Any]) -> DeleteOptions:
    """A DeleteOptions object's grace period and preconditions (a DELETE's body, an
    Eviction's `deleteOptions`)."""
    preconditions = body.get("preconditions") or {}
    if not isinstance(preconditions, Mapping):
        raise bad_request("DeleteOptions.preconditions must be an object")
    uid, version = preconditions.get("uid"), preconditions.get("resourceVersion")
    if not isinstance(uid, str | None) or not isinstance(version, str | None):
        raise bad_request("DeleteOptions.preconditions values must be strings")
    return DeleteOptions(
        grace_period=_grace_period(body.get("gracePeriodSeconds")),
        uid=uid,
        resource_version=version,
    )


def check_preconditions(
    doc: Mapping[str, Any], options: DeleteOptions, resource: str, *, group: str = ""
) -> None:
    """The stored object meets the DELETE's preconditions, else 409 with the apiserver's text
    (the resource named with its group, `deployments.apps`, as the apiserver names it)."""
    qualified = f"{resource}.{group}" if group else resource
    meta = doc["metadata"]
    for field, wanted, actual in (
        ("UID", options.uid, meta.get("uid")),
        ("ResourceVersion", options.resource_version, meta.get("resourceVersion")),
    ):
        if wanted is not None and wanted != actual:
            name = meta["name"]
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {qualified} "{name}": Precondition failed: '
                f"{field} in precondition: {wanted}, {field} in object meta: {actual}",
                details={"name": name, **({"group": group} if group else {}), "kind": resource},
            )
