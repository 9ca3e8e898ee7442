"""The watch-list options of a LIST or WATCH: `sendInitialEvents` and `resourceVersionMatch`.

client-go's informers, with the WatchList feature (beta, on by default in kube-apiserver
v1.32), open one watch instead of a list and a watch: `sendInitialEvents=true`,
`resourceVersionMatch=NotOlderThan`, `allowWatchBookmarks=true`. The apiserver sends every
current object as ADDED, then a BOOKMARK annotated `k8s.io/initial-events-end: "true"` at the
version of that state, then the changes. `sendInitialEvents=false` starts the watch at the
version given, or now, with no initial objects. A list's `resourceVersionMatch` needs a
resourceVersion; the daemon keeps one state, so it serves any match from it. The options are
validated as `ValidateListOptions` does (422 `ListOptions.meta.k8s.io "" is invalid`).
"""

from __future__ import annotations

from collections.abc import Mapping

from kubesim_images.daemon.kube import invalid, query_flag
from kubesim_images.pod import FieldError

NOT_OLDER_THAN = "NotOlderThan"
EXACT = "Exact"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def _forbidden(field: str, message: str) -> FieldError:
    return FieldError(field, "FieldValueForbidden", f"Forbidden: {message}")


def _list_match_causes(query: Mapping[str, str], match: str) -> list[FieldError]:
    """A list's `resourceVersionMatch`: Exact or NotOlderThan, with a resourceVersion."""
    if not match:
        return []
    version = query.get("resourceVersion", "")
    causes = []
    if not version:
        message = "resourceVersionMatch is forbidden unless resourceVersion is provided"
        causes.append(_forbidden("resourceVersionMatch", message))
    if query.get("continue"):
        message = "resourceVersionMatch is forbidden when continue is provided"
        causes.append(_forbidden("resourceVersionMatch", message))
    if match not in (EXACT, NOT_OLDER_THAN):
        causes.append(
            FieldError(
                "resourceVersionMatch",
                "FieldValueNotSupported",
                f'Unsupported value: "{match}": supported values: "{EXACT}", '
                f'"{NOT_OLDER_THAN}", ""',
            )
        )
    if match == EXACT and version == "0":
        message = 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'
        causes.append(_forbidden("resourceVersionMatch", message))
    return causes


def send_initial_events(query: Mapping[str, str], *, watching: bool) -> bool | None:
    """The request's `sendInitialEvents` (None when absent), its options checked."""
    send = query_flag(query, "sendInitialEvents") if "sendInitialEvents" in query else None
    match = query.get("resourceVersionMatch", "")
    causes: list[FieldError] = []
    if not watching:
        if send is not None:
            message = "sendInitialEvents is forbidden for list"
            causes.append(_forbidden("sendInitialEvents", message))
        causes += _list_match_causes(query, match)
    else:
        if send is not None:
            if match != NOT_OLDER_THAN:
                causes.append(
                    _forbidden(
                        "resourceVersionMatch",
                        "sendInitialEvents requires setting resourceVersionMatch to "
                        + NOT_OLDER_THAN,
                    )
                )
            if not query_flag(query, "allowWatchBookmarks"):
                causes.append(
                    _forbidden(
                        "allowWatchBookmarks",
                        "sendInitialEvents requires setting allowWatchBookmarks to true",
                    )
                )
        if match:
            if send is None:
                causes.append(
                    _forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is "
                        "provided",
                    )
                )
            if match != NOT_OLDER_THAN:
                causes.append(
                    FieldError(
                        "resourceVersionMatch",
                        "FieldValueNotSupported",
                        f'Unsupported value: "{match}": supported values: "{NOT_OLDER_THAN}"',
                    )
                )
            if query.get("continue"):
                causes.append(
                    _forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden when continue is provided",
                    )
                )
    if causes:
        raise invalid("ListOptions.meta.k8s.io", "", causes)
    return send
