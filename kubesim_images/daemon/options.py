"""Write options as the API server reads them: `dryRun` on create, update, patch and delete.

`dryRun=All` runs a write through every check and default a real one gets and answers the
object that would be stored, but stores nothing. It comes from the query, or for a DELETE from
its `DeleteOptions` body when there is one (the body wins, as in the API server's delete
handler). Any other value is refused 422 with the API server's text for the options kind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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


def dry_run(request: web.Request) -> bool:
    """Whether this create, update or patch is a dry run (checked before the body is read)."""
    return check_dry_run(request.query.getall("dryRun", []), request.method)


async def delete_dry_run(request: web.Request) -> bool:
    """Whether this DELETE is a dry run: its DeleteOptions body, else its query."""
    if not request.body_exists or request.content_length == 0:
        return dry_run(request)
    body = await read_body(request)
    if not isinstance(body, Mapping):
        raise bad_request("the request body must be a DeleteOptions object")
    values = body.get("dryRun")
    if values is None:
        return False
    if not isinstance(values, list):
        raise bad_request("DeleteOptions.dryRun must be a list of strings")
    return check_dry_run(values, "DELETE")
