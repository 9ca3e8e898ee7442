"""Namespaces: the built-in ones, those created through the API, and those objects live in.

The daemon keeps no Namespace objects of its own beyond the names created, saved in the state
store; every namespace is shown Active, created when the node was. A create takes a version
and is published on the change feed like any other write.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from kubesim_images.clock import WallClock
from kubesim_images.daemon.changefeed import ADDED, ChangeFeed
from kubesim_images.daemon.kube import already_exists, bad_request, invalid, not_found
from kubesim_images.daemon.storage import ReadOnly
from kubesim_images.pod import DNS1123_LABEL, FieldError, label_invalid
from kubesim_images.state import StateStore

BUILT_IN = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


class Namespaces(ReadOnly):
    """`Storage` for namespaces: list, get and create."""

    def __init__(
        self,
        state: StateStore,
        feed: ChangeFeed,
        clock: WallClock,
        created_epoch: Callable[[], float],
        in_use: Callable[[], set[str]],
    ) -> None:
        self._state = state
        self._feed = feed
        self._clock = clock
        self._created_epoch = created_epoch
        self._in_use = in_use
        self.created: list[str] = json.loads(state.get_meta("namespaces", "[]"))

    def names(self) -> list[str]:
        return sorted(BUILT_IN | self._in_use() | set(self.created))

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        del namespace
        return [self.doc(n) for n in self.names()]

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        del namespace
        if name not in self.names():
            raise not_found("namespaces", name)
        return self.doc(name)

    def doc(self, name: str) -> dict[str, Any]:
        created = self._clock.loop_time(self._created_epoch())
        return {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "creationTimestamp": self._clock.rfc3339(created),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    def create(
        self, namespace: str, body: Mapping[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        del namespace
        meta = body.get("metadata") or {}
        name = meta.get("name") if isinstance(meta, Mapping) else None
        if not isinstance(name, str) or not name:
            raise bad_request("metadata.name is required")
        if len(name) > 63 or not DNS1123_LABEL.fullmatch(name):
            raise invalid(
                "Namespace",
                name,
                [FieldError("metadata.name", "FieldValueInvalid", label_invalid(name))],
            )
        if name in self.names():
            raise already_exists("namespaces", name)
        if dry_run:
            return self.doc(name)
        names = [*self.created, name]
        with self._state.transaction():
            self._state.put_meta("namespaces", json.dumps(names))
        self.created = names
        doc = self.doc(name)
        doc["metadata"]["resourceVersion"] = str(self._feed.next_version())
        self._feed.publish("Namespace", ADDED, doc)
        return self.doc(name)
