"""`limit` and `continue` on lists, as the apiserver pages them (`kubectl get --chunk-size`, the
clients' paginated lists).

A page is at most `limit` objects, in the order the unpaged list has (kubectl always sends
`limit=500`, so paging must not reorder); when more remain, the list's metadata carries
`continue` (an opaque token naming the last object served, its position and the collection
version the listing started at) and `remainingItemCount`. The next request with that token
starts after that object (at its position if it is gone meanwhile). The daemon keeps no
snapshots, so a later page shows the objects as they are now (what the apiserver serves once
the first page's version is compacted, minus the 410).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubesim_images.daemon.kube import bad_request


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    # For the list's metadata: the token of the next page and how many remain after this one.
    continue_token: str | None = None
    remaining: int | None = None

    def metadata(self, resource_version: int) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(resource_version)}
        if self.continue_token is not None:
            meta["continue"] = self.continue_token
            meta["remainingItemCount"] = self.remaining
        return meta


def _key(doc: Mapping[str, Any]) -> tuple[str, str]:
    meta = doc["metadata"]
    return str(meta.get("namespace", "")), str(meta["name"])


def _limit(value: str | None) -> int:
    """The `limit` of a list, already checked as an int64 where the API reads its options
    (`api._check_limit`, the apiserver's texts)."""
    if value in (None, ""):
        return 0
    return max(int(value), 0)  # 0 or less: no limit, as the apiserver reads it


def _start(token: str) -> tuple[tuple[str, str], int]:
    invalid = bad_request("continue key is not valid: the token was not issued by this server")
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
        start, position = state.get("start"), state.get("pos")
    except (binascii.Error, ValueError, AttributeError):
        raise invalid from None
    if not (
        isinstance(start, list)
        and len(start) == 2
        and all(isinstance(k, str) for k in start)
        and isinstance(position, int)
        and position >= 0
    ):
        raise invalid
    return (start[0], start[1]), position


def page(query: Mapping[str, str], docs: list[dict[str, Any]], resource_version: int) -> Page:
    """The page of `docs` the query's `limit` and `continue` ask for (all of them without)."""
    limit = _limit(query.get("limit"))
    token = query.get("continue")
    if not limit and not token:
        return Page(docs)
    first = 0
    if token:
        last, position = _start(token)
        keys = [_key(d) for d in docs]
        # Gone meanwhile: what followed it has moved up into its place.
        first = keys.index(last) + 1 if last in keys else min(position, len(docs))
    rest = docs[first:]
    if not limit or len(rest) <= limit:
        return Page(rest)
    items = rest[:limit]
    state = {
        "v": "meta.k8s.io/v1",
        "rv": resource_version,
        "start": list(_key(items[-1])),
        "pos": first + limit - 1,
    }
    encoded = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
    return Page(items, encoded, len(rest) - limit)
